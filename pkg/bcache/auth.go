package bcache

import (
	"net/netip"

	"github.com/mcoad/mcoad/pkg/proto"
)

// MNHAKey is an RFC 4285 MN-HA security association.
type MNHAKey struct {
	SPI uint32
	Key []byte
	// MAC, when set, computes the authenticators instead of a fresh
	// proto.NewMNHA(Key) per message, so that checking does not allocate.
	// It then belongs to the cache's goroutine (proto.MNHA is not safe for
	// concurrent use).
	MAC *proto.MNHA
}

func (k *MNHAKey) mac() *proto.MNHA {
	if k.MAC != nil {
		return k.MAC
	}
	return proto.NewMNHA(k.Key)
}

// Refusal says why a home agent refused a BU for want of authentication.
type Refusal uint8

const (
	NotRefused Refusal = iota
	// RefusedNoKey: Config.RequireAuth and the home address has no MN-HA
	// key; answered 129.
	RefusedNoKey
	// RefusedUnauthenticated: the home address has a key and the BU
	// carries no MN-HA option; discarded.
	RefusedUnauthenticated
	// RefusedBadAuth: the BU's MN-HA option is not last, names another
	// SPI or has a wrong authenticator; discarded.
	RefusedBadAuth
	numRefusals
)

var refusalNames = [...]string{"", "no_key", "unauthenticated", "bad_auth"}

func (r Refusal) String() string {
	if int(r) < len(refusalNames) {
		return refusalNames[r]
	}
	return "refused?"
}

// verify checks a BU's MN-HA option (RFC 4285 5): present, last (the parser
// sets AuthOffset for the last authentication option), subtype MN-HA, the
// association's SPI, and a right authenticator over the care-of address the
// BU registers (its source or the Alternate CoA) and the home address.
func (c *Cache) verify(in *BUInput, spi uint32, mac *proto.MNHA, hoa netip.Addr) Refusal {
	o := &in.Msg.Options
	if !o.HasMNHAAuth {
		return RefusedUnauthenticated
	}
	if o.MNHASubtype != proto.AuthSubtypeMNHA || o.MNHASPI != spi ||
		len(o.MNHAAuthData) != proto.AuthenticatorLen || in.Msg.AuthOffset < 0 ||
		!mac.Verify(in.MH, in.Msg.AuthOffset, careOf(in), hoa) {
		return RefusedBadAuth
	}
	return NotRefused
}

// baSigner is the proto.Signer of one BA: the address it is sent to and the
// home address (RFC 4285 5.1). The Cache reuses one.
type baSigner struct {
	mac      *proto.MNHA
	coa, hoa netip.Addr
}

func (s *baSigner) Sign(mh []byte, authOff int) error { return s.mac.Sign(mh, authOff, s.coa, s.hoa) }

// buAuth is the outcome of a home agent's MN-HA check of one BU.
type buAuth struct {
	mac     *proto.MNHA // set when the BU was authenticated: the BA is signed
	spi     uint32
	refused Refusal
}

// authenticate is a home agent's MN-HA check (RFC 4285) of a BU for a home
// address it serves.
func (c *Cache) authenticate(u *bu) (proto.Status, buAuth, DropReason) {
	var k MNHAKey
	ok := false
	if c.cfg.MNHAKeys != nil {
		k, ok = c.cfg.MNHAKeys(u.hoa)
	}
	switch {
	case ok:
		auth := buAuth{mac: k.mac(), spi: k.SPI}
		if r := c.verify(u.in, auth.spi, auth.mac, u.hoa); r != NotRefused {
			// RFC 4285: a BU that the security association does not
			// authenticate is silently discarded; an answer could
			// not be authenticated by the mobile node either.
			c.cnt.refused[r]++
			return 0, buAuth{refused: r}, DropAuth
		}
		return 0, auth, NotDropped
	case c.cfg.RequireAuth:
		// No security association at all: a matter of policy, not
		// of a forged message, so the sender is told (129, RFC 6275
		// 6.1.8); a mobile node without its key then shows why it
		// is not registered. 146 (RFC 4285's MIPV6-AUTH-FAIL) is
		// BULK REGISTRATION NOT SUPPORT in the draft-00 profile.
		// It changes nothing and the BA is not signed.
		c.cnt.refused[RefusedNoKey]++
		return proto.StatusAdminProhibited, buAuth{refused: RefusedNoKey}, NotDropped
	}
	return 0, buAuth{}, NotDropped
}

// authenticator sets the BA's MN-HA option (RFC 4285 5.1) with a zeroed
// authenticator and returns the Signer that fills it.
func (c *Cache) authenticator(ba *proto.Message, auth buAuth, dst, hoa netip.Addr) proto.Signer {
	ba.Options.HasMNHAAuth = true
	ba.Options.MNHASubtype = proto.AuthSubtypeMNHA
	ba.Options.MNHASPI = auth.spi
	c.authBuf = [proto.AuthenticatorLen]byte{}
	ba.Options.MNHAAuthData = c.authBuf[:]
	c.signer = baSigner{mac: auth.mac, coa: dst, hoa: hoa}
	return &c.signer
}
