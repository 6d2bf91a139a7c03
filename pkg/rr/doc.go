// Package rr is Mobile IPv6 return routability (RFC 6275 5.2, 9.4, 9.5.1,
// 11.6) per care-of address, as draft-ietf-monami6-multiplecoa-00 uses it
// (sections 3.1 and 5.2): the mobile node runs one home test per
// correspondent and one care-of test per care-of address, then registers
// each care-of address with its own BU carrying its BID sub-option (never
// the C flag: bulk registration is not used with correspondents), and the
// authenticator covers the BID sub-option with the rest of the MH.
//
// Formulas (RFC 6275 5.2.5, 5.2.6):
//
//	home keygen token    = First(64, HMAC_SHA1(Kcn, home address | nonce | 0))
//	care-of keygen token = First(64, HMAC_SHA1(Kcn, care-of address | nonce | 1))
//	Kbm                  = SHA1(home keygen token | care-of keygen token)
//	                       SHA1(home keygen token)   for a de-registration
//	                                                 (lifetime 0, or CoA = HoA)
//	authenticator        = First(96, HMAC_SHA1(Kbm, care-of address | correspondent | MH))
//
// with the MH's checksum taken as zero and the authenticator itself left
// out, for the BU and for the correspondent's BA alike (proto.BAD computes
// the same; this package has its own HMAC-SHA1 so that the
// correspondent's check does not allocate).
//
// [CN] is the correspondent's side: Kcn, nonces, HoT/CoT answers and the
// check of BUs, whose binding cache rules are pkg/bcache's (RoleCN, with
// BUInput.Reject carrying 136-138). [MN] is the mobile node's side, owned
// by the BUL engine (pkg/bul): per correspondent the home test, per
// care-of address the care-of test, and the BUs they authorize. Neither is
// safe for concurrent use.
package rr
