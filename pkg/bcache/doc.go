// Package bcache is the binding cache of a home agent or correspondent node
// with Multiple Care-of Addresses registration: Binding Update processing as
// draft-ietf-monami6-multiplecoa-00 section 6 adds it to RFC 6275 9.5 and
// 10.3, Binding Acknowledgement, Binding Refresh Request and Binding Error
// generation, expiry, and lookups by (home address, BID).
//
// It is pure logic: the caller feeds received Binding Updates to
// [Cache.ProcessBU], sends what it returns, calls [Cache.Tick] when
// [Cache.Next] is due, and applies the returned [Change]s to proxy
// neighbour discovery and the data plane. A lookup is two memory accesses;
// a binding takes about 50 octets.
//
// Where the specifications leave room (each is tested):
//
//   - Sequence numbers are per home address (RFC 6275 9.5.1), shared by
//     all its BIDs, and forgotten when it has no binding left.
//   - A BU whose BID sub-options are partly non-compliant is applied for
//     the compliant ones; the others get 128 and the BA 145 (draft 5.7).
//     Several sub-options in one BU must all carry the C flag (4.3.1).
//   - R on a BID without binding is accepted; a de-registration of an
//     unknown BID gets 133 (draft 6.2), at a correspondent too.
//   - When both 144 and 145 apply, the BA carries 145.
//   - A BU that fails RFC 4285 MN-HA authentication is silently discarded
//     (under draft-00, 146 means BULK REGISTRATION NOT SUPPORT).
//   - Binding Acknowledgements are rate limited per home address (RFC 6275
//     MAX_UPDATE_RATE) and by one shared limit for unknown home addresses:
//     excess BUs are dropped before they change anything, and counted.
package bcache
