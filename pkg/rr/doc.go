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
// # Correspondent side: CN
//
// CN keeps Kcn (20 random octets, replaced every KeyLifetime; nonces keep
// the key they were made with, so the previous Kcn lives as long as they
// do) and the nonces: a new one when the current one is NonceInterval (30
// s) old, made on demand, with a 16-bit index starting at a random value,
// recognised for NonceLifetime (MAX_NONCE_LIFETIME, 240 s) after it was
// made. Answer builds the HoT or CoT for a HoTI or CoTI; VerifyBU checks a
// BU (an error: discard silently; 136/137/138: answer with it; 0: go on
// and sign the BA with BASigner). Binding cache rules are pkg/bcache's
// (RoleCN, with BUInput.Reject carrying 136-138); internal/ha wires both.
//
// # Mobile node side: MN
//
// MN keeps, per correspondent, the home test and, per care-of address,
// the care-of test: cookie, init in flight (retransmitted after 1 s,
// doubling to 32 s, same cookie), token with its nonce index, usable
// MAX_TOKEN_LIFETIME (210 s) counted from when its init was sent, and
// asked for again RefreshAhead (30 s) before that. For the BUL engine
// (pkg/bul), which owns the MN on its goroutine:
//
//   - Need(cn, coa) returns the HoTI (source the home address: it must go
//     through the home agent tunnel, not out of a CoA) and the CoTI (source
//     coa, sent directly) that are due now; call it whenever a binding with
//     cn through coa is wanted and not Ready, and when Expire's time comes.
//     Need(cn, hoa) (or an invalid coa) considers the home test only: what
//     a de-registration needs.
//   - HandleHoT / HandleCoT for every HoT/CoT received (false: not ours,
//     ignore it).
//   - Ready(cn, coa) / ReadyDereg(cn, coa) report whether a BU can go out.
//   - BU(BUParams) builds it: source coa, Home Address option, A flag, no
//     H, BID sub-option without flags (none for BID 0, the RFC 6275
//     fallback), Nonce Indices, Binding Authorization Data; send the
//     packet with the returned Signer. Lifetime capped at
//     MAX_RR_BINDING_LIFETIME (420 s); 0 (or coa = hoa) de-registers with
//     the home keygen token alone.
//   - VerifyBA(ba) before acting on a BA from a correspondent; then
//     Rejected(cn, coa, status): on 136/137/138 it drops the expired
//     token(s), and the BU waits for Need/Ready again.
//   - Expire(now) drops expired tokens and returns when to call again.
//   - Forget(cn, coa) when a CoA goes away; ForgetCN(cn) when route
//     optimisation with cn ends; States() for status displays.
package rr
