package proto

import (
	"crypto/hmac"
	"crypto/sha1"
	"errors"
	"fmt"
	"hash"
	"net/netip"
)

// AuthenticatorLen is the length of the HMAC_SHA1-96 authenticators of the
// Binding Authorization Data option (RFC 6275 6.2.7) and of the MN-HA
// Mobility Message Authentication option (RFC 4285 5.1).
const AuthenticatorLen = 12

// Signer fills in an authenticator (Binding Authorization Data or MN-HA
// authentication) in mh at authOff, computed over the MH as it is before the
// checksum is set (AppendPacket calls it with the checksum and the
// authenticator zero).
type Signer interface {
	Sign(mh []byte, authOff int) error
}

var errAuthLayout = fmt.Errorf("proto: no authenticator of %d octets at that offset: %w", AuthenticatorLen, ErrInvalid)

// authMAC is a keyed HMAC-SHA1 whose state and scratch buffers are reused,
// so that computing an authenticator does not allocate. Not safe for
// concurrent use.
type authMAC struct {
	mac  hash.Hash
	addr [16]byte
	zero [2]byte
	sum  [sha1.Size]byte
}

func (a *authMAC) init(key []byte) { a.mac = hmac.New(sha1.New, key) }

// compute returns First(96, HMAC_SHA1(key, a1 | a2 | mh[:authOff] | tail))
// with mh's checksum field (octets 4 and 5) taken as zero. The result
// aliases a's buffer.
func (a *authMAC) compute(a1, a2 netip.Addr, mh []byte, authOff int, tail []byte) []byte {
	a.mac.Reset()
	a.addr = a1.As16()
	a.mac.Write(a.addr[:])
	a.addr = a2.As16()
	a.mac.Write(a.addr[:])
	a.mac.Write(mh[:4])
	a.mac.Write(a.zero[:])
	a.mac.Write(mh[6:authOff])
	a.mac.Write(tail)
	return a.mac.Sum(a.sum[:0])[:AuthenticatorLen]
}

// MNHA computes and checks the MN-HA Mobility Message Authentication
// option of RFC 4285 section 5.1 (subtype 1) with one shared key:
//
//	Authenticator = First(96, HMAC_SHA1(key, care-of address | home address | MH Data))
//
// where MH Data is the Mobility Header from its Payload Proto octet up to
// and including the option's Mobility SPI field, that is mh[:authOff], with
// the Checksum field taken as zero. The option's Type, Length, Subtype and
// SPI are therefore covered; the authenticator itself and anything after it
// are not (the option must be last). The care-of address is the one the BU
// registers (its source, or the Alternate CoA) and, for a BA, the address
// the BA is sent to.
//
// An MNHA reuses its HMAC state, so Verify does not allocate; it is not safe
// for concurrent use.
type MNHA struct{ a authMAC }

// NewMNHA returns an MNHA for the MN-HA shared key.
func NewMNHA(key []byte) *MNHA {
	x := &MNHA{}
	x.a.init(key)
	return x
}

// mnhaLayout reports whether authOff follows the SPI of an MN-HA option
// with a 96-bit authenticator that lies inside mh.
func mnhaLayout(mh []byte, authOff int) bool {
	return authOff-7 >= 6 && authOff <= len(mh)-AuthenticatorLen &&
		OptionType(mh[authOff-7]) == OptMNHAAuth && mh[authOff-6] == 5+AuthenticatorLen
}

// Sign writes the authenticator into mh[authOff:]. The CoA and HoA are the
// mobility data's addresses (see MNHA).
func (x *MNHA) Sign(mh []byte, authOff int, coa, hoa netip.Addr) error {
	if !mnhaLayout(mh, authOff) {
		return errAuthLayout
	}
	copy(mh[authOff:], x.a.compute(coa, hoa, mh, authOff, nil))
	return nil
}

// Verify reports whether mh carries the right MN-HA authenticator at
// authOff (Message.AuthOffset after parsing). It does not allocate.
func (x *MNHA) Verify(mh []byte, authOff int, coa, hoa netip.Addr) bool {
	if !mnhaLayout(mh, authOff) {
		return false
	}
	return hmac.Equal(x.a.compute(coa, hoa, mh, authOff, nil), mh[authOff:authOff+AuthenticatorLen])
}

// Signer returns a Signer for AppendPacket that signs with x for the given
// addresses.
func (x *MNHA) Signer(coa, hoa netip.Addr) Signer { return mnhaSigner{x, coa, hoa} }

type mnhaSigner struct {
	x        *MNHA
	coa, hoa netip.Addr
}

func (s mnhaSigner) Sign(mh []byte, authOff int) error { return s.x.Sign(mh, authOff, s.coa, s.hoa) }

// MNHASigner is a Signer for the MN-HA authentication option with a key
// (it builds the HMAC on each Sign; use MNHA.Signer to reuse one).
type MNHASigner struct {
	Key      []byte
	CoA, HoA netip.Addr
}

// Sign implements Signer.
func (s MNHASigner) Sign(mh []byte, authOff int) error {
	return NewMNHA(s.Key).Sign(mh, authOff, s.CoA, s.HoA)
}

// BAD computes the Binding Authorization Data option of RFC 6275
// section 6.2.7 (return routability, section 5.2.6) with a binding
// management key Kbm:
//
//	Authenticator = First(96, HMAC_SHA1(Kbm, care-of address | correspondent | MH Data))
//
// where MH Data is the whole Mobility Header excluding the Authenticator
// field itself, with the Checksum field taken as zero: mh[:authOff] and
// whatever follows the authenticator (nothing in messages AppendMessage
// builds, since the option is last and ends on an 8-octet boundary). The
// option's Type and Length octets are covered. The care-of address is the
// one the BU registers (the home address in a de-registration); the
// correspondent is the CN's address. The mobile node signs its BUs to a
// correspondent with it (BADSigner); pkg/rr checks and signs the
// correspondent's side with its own allocation-free HMAC.
//
// A BAD reuses its HMAC state; it is not safe for concurrent use.
type BAD struct{ a authMAC }

// NewBAD returns a BAD for the key Kbm.
func NewBAD(kbm []byte) *BAD {
	x := &BAD{}
	x.a.init(kbm)
	return x
}

func badLayout(mh []byte, authOff int) bool {
	return authOff-2 >= 6 && authOff <= len(mh)-AuthenticatorLen &&
		OptionType(mh[authOff-2]) == OptAuthData && mh[authOff-1] == AuthenticatorLen
}

// Sign writes the authenticator into mh[authOff:].
func (x *BAD) Sign(mh []byte, authOff int, coa, cn netip.Addr) error {
	if !badLayout(mh, authOff) {
		return errAuthLayout
	}
	copy(mh[authOff:], x.a.compute(coa, cn, mh, authOff, mh[authOff+AuthenticatorLen:]))
	return nil
}

// BADSigner is a Signer for the Binding Authorization Data option.
type BADSigner struct {
	Kbm           []byte
	CoA           netip.Addr
	Correspondent netip.Addr
}

// Sign implements Signer.
func (s BADSigner) Sign(mh []byte, authOff int) error {
	if len(s.Kbm) == 0 {
		return errors.New("proto: BADSigner without Kbm")
	}
	return NewBAD(s.Kbm).Sign(mh, authOff, s.CoA, s.Correspondent)
}
