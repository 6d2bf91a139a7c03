package bcache

import (
	"net/netip"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

// buAuth is the outcome of a home agent's MN-HA check of one BU.
type buAuth struct {
	mac     *proto.MNHA // set when the BU was authenticated: the BA is signed
	spi     uint32
	refused Refusal
}

// admit runs the checks that come before the sequence number: the role's
// (RFC 6275 9.5.1, 10.3.1), authentication (RFC 4285), a home agent's
// refusal of a non-home registration, the caller's verdict and a bad
// mobile network prefix. It returns the status that rejects the BU without
// changing anything (0 when none), or a reason to drop it.
func (c *Cache) admit(u *bu, h *hoaState, badMNP bool) (proto.Status, buAuth, DropReason) {
	home := u.m.Flags&proto.FlagH != 0
	var early proto.Status
	var auth buAuth
	switch c.cfg.Role {
	case RoleHA:
		early = c.serves(u.hoa)
	case RoleCN:
		if home {
			early = proto.StatusHomeRegNotSupported // RFC 6275 9.5.1
		}
	}
	if early == 0 && c.cfg.Role == RoleHA {
		var d DropReason
		if early, auth, d = c.authenticate(u); d != NotDropped {
			return 0, auth, d
		}
	}
	if early == 0 && c.cfg.Role == RoleHA && !home {
		if h == nil {
			return 0, auth, DropNotHome
		}
		early = proto.StatusRegTypeChangeDisallowed // RFC 6275 9.5.1
	}
	if early == 0 && u.in.Reject >= 128 {
		early = u.in.Reject
	}
	if early == 0 && badMNP {
		early = proto.StatusInvalidPrefix
	}
	return early, auth, NotDropped
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

// serves returns 0 for a home address the home agent serves, else the
// RFC 6275 10.3.1 status.
func (c *Cache) serves(hoa netip.Addr) proto.Status {
	for _, p := range c.cfg.Serve {
		if p.Contains(hoa) {
			return 0
		}
	}
	if c.cfg.HomePrefix.IsValid() && c.cfg.HomePrefix.Contains(hoa) {
		return proto.StatusNotHomeAgentForMN
	}
	return proto.StatusNotHomeSubnet
}

// allow is the rate limit (GCRA with a burst of one second's worth): per
// home address when it has an entry, one shared bucket otherwise.
func (c *Cache) allow(h *hoaState, now int64) bool {
	if h != nil {
		return gcra(&h.tat, now, c.cfg.MaxBAPerSecondPerHoA)
	}
	return gcra(&c.newTAT, now, c.cfg.MaxBAPerSecondNew)
}

func gcra(tat *int64, now int64, rate int) bool {
	if rate < 0 {
		return true
	}
	interval := int64(time.Second) / int64(rate)
	t := max(*tat, now)
	if t-now > interval*int64(rate-1) {
		return false
	}
	*tat = t + interval
	return true
}
