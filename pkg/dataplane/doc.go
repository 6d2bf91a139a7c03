// Package dataplane moves packets for the home address: tunnels between the
// mobile node and its home agent for each BID, and on the home agent the
// proxy neighbour advertisements that pull home-address traffic off the home
// link (RFC 6275 10.4.1, draft section 3.3).
package dataplane
