package rr

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding"
	"hash"
	"net/netip"

	"github.com/mcoad/mcoad/pkg/proto"
)

// Sizes of the return routability values (RFC 6275 5.2.1-5.2.5).
const (
	KcnLen    = 20 // the correspondent's secret key
	NonceLen  = 8
	TokenLen  = 8  // keygen tokens: First(64, HMAC_SHA1(...))
	CookieLen = 8  // init cookies
	KbmLen    = 20 // binding management key: SHA1(...)
)

// hmacSHA1 is HMAC-SHA1 (RFC 2104) over one reused SHA-1 state with fixed
// pad buffers, so that neither re-keying nor computing allocates:
// crypto/hmac allocates on New, and the correspondent needs a new key (Kbm)
// for every Binding Update. Keys are at most one SHA-1 block (ours are 20
// octets). Not safe for concurrent use.
type hmacSHA1 struct {
	h     hash.Hash
	state stateHash // h, for saved states
	opad  [sha1.BlockSize]byte
	ipad  [sha1.BlockSize]byte
	inner [sha1.Size]byte
	sum   [sha1.Size]byte
	addr  [16]byte
	one   [1]byte
}

// stateHash is a hash whose state can be saved and restored; crypto/sha1's
// digest is one.
type stateHash interface {
	hash.Hash
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

func newHMAC() *hmacSHA1 {
	h := sha1.New()
	return &hmacSHA1{h: h, state: h.(stateHash)}
}

// keyState is an HMAC key with the SHA-1 states after its inner and outer
// pad blocks saved, so that each MAC with it costs two blocks fewer. Kcn
// has one: it is used for two tokens in every BU check.
type keyState struct {
	inner, outer []byte
}

// saveKey computes the saved states of key.
func (m *hmacSHA1) saveKey(key []byte) (keyState, error) {
	var ks keyState
	var err error
	m.start(key)
	if ks.inner, err = m.state.AppendBinary(nil); err != nil {
		return ks, err
	}
	m.h.Reset()
	m.h.Write(m.opad[:])
	if ks.outer, err = m.state.AppendBinary(nil); err != nil {
		return ks, err
	}
	return ks, nil
}

// startSaved begins a MAC with a saved key. The states were made by the
// same hash, so restoring them cannot fail.
func (m *hmacSHA1) startSaved(ks *keyState) { _ = m.state.UnmarshalBinary(ks.inner) }

// finishSaved ends a MAC begun with startSaved.
func (m *hmacSHA1) finishSaved(ks *keyState) []byte {
	m.h.Sum(m.inner[:0])
	_ = m.state.UnmarshalBinary(ks.outer)
	m.h.Write(m.inner[:])
	return m.h.Sum(m.sum[:0])
}

// start begins a MAC with key (len(key) <= 64).
func (m *hmacSHA1) start(key []byte) {
	for i := range m.ipad {
		var k byte
		if i < len(key) {
			k = key[i]
		}
		m.ipad[i] = k ^ 0x36
		m.opad[i] = k ^ 0x5c
	}
	m.h.Reset()
	m.h.Write(m.ipad[:])
}

func (m *hmacSHA1) write(b []byte) { m.h.Write(b) }

func (m *hmacSHA1) writeAddr(a netip.Addr) {
	m.addr = a.As16()
	m.h.Write(m.addr[:])
}

func (m *hmacSHA1) writeByte(b byte) {
	m.one[0] = b
	m.h.Write(m.one[:])
}

// finish returns the MAC; it aliases m's buffer until the next finish.
func (m *hmacSHA1) finish() []byte {
	m.h.Sum(m.inner[:0])
	m.h.Reset()
	m.h.Write(m.opad[:])
	m.h.Write(m.inner[:])
	return m.h.Sum(m.sum[:0])
}

// token computes a keygen token (RFC 6275 5.2.5):
//
//	First(64, HMAC_SHA1(Kcn, address | nonce | 0))  home keygen token
//	First(64, HMAC_SHA1(Kcn, address | nonce | 1))  care-of keygen token
func (m *hmacSHA1) token(kcn *keyState, addr netip.Addr, nonce *[NonceLen]byte, careof bool) (t [TokenLen]byte) {
	m.startSaved(kcn)
	m.writeAddr(addr)
	m.write(nonce[:])
	var x byte
	if careof {
		x = 1
	}
	m.writeByte(x)
	copy(t[:], m.finishSaved(kcn))
	return t
}

// kbm computes Kbm = SHA1(home keygen token | care-of keygen token), or
// SHA1(home keygen token) when careof is nil (a de-registration, RFC 6275
// 5.2.5).
func (m *hmacSHA1) kbm(home, careof *[TokenLen]byte, out *[KbmLen]byte) {
	m.h.Reset()
	m.h.Write(home[:])
	if careof != nil {
		m.h.Write(careof[:])
	}
	m.h.Sum(out[:0])
}

// authenticator computes First(96, HMAC_SHA1(Kbm, care-of address |
// correspondent | MH Data)) where MH Data is mh without its authenticator
// (mh[authOff:authOff+12]) and with the checksum (octets 4 and 5) taken as
// zero (RFC 6275 5.2.6, 6.2.7), as proto.BAD computes it.
func (m *hmacSHA1) authenticator(kbm *[KbmLen]byte, coa, cn netip.Addr, mh []byte, authOff int) []byte {
	m.start(kbm[:])
	m.writeAddr(coa)
	m.writeAddr(cn)
	m.write(mh[:4])
	m.addr = [16]byte{}
	m.write(m.addr[:2])
	m.write(mh[6:authOff])
	m.write(mh[authOff+proto.AuthenticatorLen:])
	return m.finish()[:proto.AuthenticatorLen]
}

// badLayout reports whether mh has a Binding Authorization Data option
// whose 96-bit authenticator starts at authOff and ends the message, as
// RFC 6275 9.5.1 asks (the option last, no trailing padding).
func badLayout(mh []byte, authOff int) bool {
	return authOff-2 >= 6 && authOff+proto.AuthenticatorLen == len(mh) &&
		proto.OptionType(mh[authOff-2]) == proto.OptAuthData && mh[authOff-1] == proto.AuthenticatorLen
}

// verifyBAD checks the authenticator of mh in constant time.
func (m *hmacSHA1) verifyBAD(kbm *[KbmLen]byte, coa, cn netip.Addr, mh []byte, authOff int) bool {
	if !badLayout(mh, authOff) {
		return false
	}
	want := m.authenticator(kbm, coa, cn, mh, authOff)
	return subtle.ConstantTimeCompare(want, mh[authOff:authOff+proto.AuthenticatorLen]) == 1
}
