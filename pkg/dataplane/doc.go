// Package dataplane is what the daemons and the data plane backends share:
// the mobile node's Backend interface and its Driver (one per backend,
// listed in package backends), the tunnel and binding types, counters and
// errors.
//
// On the mobile node every registered BID b has a tunnel device mcoab<b>
// and a routing table TableBase+b whose only route is "default dev mcoab<b>
// src HoA"; the home address sits on a device of its own (HomeDevice), so
// applications can bind to it while BIDs come and go. Which BID a packet
// takes is decided by routing alone: pkg/policy marks flows, and ip rules
// send a mark, or the home address as source, to a BID's table. A backend
// makes the devices and carries their packets to the home agent.
//
// The packages below it, by role:
//   - backends: picks a Backend by name ("auto" probes in one place);
//   - tun, ip6tnl: the mobile node's userspace and kernel backends;
//   - homeagent: the home agent's tunnels to the bindings (HABinding);
//   - correspondent: a correspondent's route-optimised path;
//   - proxynd: the home agent's proxy neighbour advertisements;
//   - internal/...: packet formats (packet, routeopt), TUN and raw socket
//     I/O (tunio), and the forwarding loop homeagent and correspondent
//     share (relay).
package dataplane
