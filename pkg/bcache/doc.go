// Package bcache is the binding cache of a home agent or correspondent node
// with Multiple Care-of Addresses registration: Binding Update processing as
// draft-ietf-monami6-multiplecoa-00 section 6 adds it to RFC 6275 9.5 and
// 10.3, Binding Acknowledgement, Binding Refresh Request and Binding Error
// generation, expiry, and lookups by (home address, BID).
//
// It is pure logic: another component receives and parses packets, feeds
// Binding Updates to [Cache.ProcessBU], sends what it returns, calls
// [Cache.Tick] when [Cache.Next] is due, and applies the returned [Change]s
// to proxy neighbour discovery and the data plane.
//
// Layout: home addresses live in an open-addressing table of 64-octet slots
// (key, the bindings' slice header, rate limiter, sequence number, timer),
// each with a small BID-ordered array of 32-octet pointer-free bindings, so
// that a lookup is two memory accesses and a million bindings take about 50
// octets each. One timer-heap entry per home address drives expiry and
// BRRs.
//
// Decisions where the specifications leave room (each is tested):
//
//   - Sequence numbers are kept per home address, as RFC 6275 9.5.1 says
//     ("the previous valid Binding Update for this home address"), shared
//     by all BIDs of that home address (the draft shares one sequence number
//     among bulk bindings, and the mobile node keeps one counter per peer).
//     When a home address has no binding left its last sequence number is
//     forgotten and any number is accepted again (RFC 6275 9.5.1).
//   - A BU whose BID sub-options are partly non-compliant is applied for the
//     compliant ones; the others get status 128 in their sub-option and the
//     BA status 145 (draft 5.7: "re-register only the failed binding").
//   - With several BID sub-options in one BU every one must carry the C flag
//     (draft 4.3.1); one without is non-compliant (128, BA 145).
//   - A sub-option with R on a BID that has no binding is accepted: the state
//     the mobile node asks for holds. A de-registration (lifetime 0) of an
//     unknown BID is rejected with 133 (draft 6.2), by a correspondent node
//     too, so that the mobile node drops the binding either way.
//   - When both 144 (regular binding replaced) and 145 apply, the BA carries
//     145: the per-BID failures are what the mobile node must act on.
//   - RFC 4285 MN-HA authentication: a BU without a valid authenticator for a
//     home address that has a key is silently discarded (RFC 4285 5.2); the
//     MIPV6-AUTH-FAIL status is not sent because under the draft-00 profile
//     146 means BULK REGISTRATION NOT SUPPORT.
//   - The MN-HA authenticator of a BU covers the care-of address it
//     registers (its source, or the Alternate CoA) and the home address; a
//     BA's covers the address it is sent to (proto.MNHA).
//   - Binding Refresh Requests are due BRRLead before expiry, once per
//     registration; Tick returns them with the binding's care-of address so
//     that a home agent sends them through that BID's tunnel.
//   - Binding Acknowledgements are rate limited per home address (RFC 6275
//     MAX_UPDATE_RATE, 3 per second by default) and, for home addresses
//     without a cache entry, by one shared limit, so that a flood of BUs
//     cannot turn the node into a reflector. Excess BUs are dropped before
//     they change anything, and counted.
//   - Save and Restore carry the cache across a restart: bindings with
//     their absolute expiry, sequence numbers and mobile network prefixes.
//     Restore drops what has expired meanwhile and refuses a home address
//     whose bindings the running configuration would not accept (not
//     served, no longer a mobile router); Generation tells the owner when
//     a new copy is due.
package bcache
