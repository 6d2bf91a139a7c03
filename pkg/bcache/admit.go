package bcache

import (
	"net/netip"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

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
