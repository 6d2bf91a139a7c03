package bcache

import (
	"net/netip"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

// Role is what the cache serves as.
type Role uint8

const (
	// RoleHA: home registrations (H flag) for the served home addresses.
	RoleHA Role = iota
	// RoleCN: correspondent registrations after return routability, which
	// the caller checks before ProcessBU (see BUInput.Reject).
	RoleCN
)

func (r Role) String() string {
	if r == RoleCN {
		return "cn"
	}
	return "ha"
}

// Config configures a Cache. The zero value is a home agent that serves no
// home address; zero fields take the defaults named below.
type Config struct {
	// Profile is the wire profile (status codes); nil means proto.Draft00.
	Profile *proto.Profile
	Role    Role

	// Serve lists the home addresses a home agent accepts BUs for.
	Serve []netip.Prefix
	// HomePrefix is the home subnet. A home address outside Serve but
	// inside HomePrefix is answered 133 (not home agent for this mobile
	// node), one outside both 132 (not home subnet), RFC 6275 10.3.1.
	HomePrefix netip.Prefix

	// MaxLifetime caps the lifetime granted; default 420 s. A
	// correspondent never grants more than MAX_RR_BINDING_LIFETIME (420 s).
	MaxLifetime time.Duration

	// BulkRegistration accepts BUs with C-flag BID sub-options (draft 5.3);
	// false answers them 146. A correspondent never accepts them.
	BulkRegistration bool

	// KeyManagement sets the BA's K flag when the BU has it (RFC 6275
	// 10.3.1); only for a home agent whose IPsec SAs follow the CoA.
	KeyManagement bool

	// MNHAKeys returns the RFC 4285 MN-HA security association of a home
	// address. When it has one, BUs without a valid MN-HA option are
	// silently discarded (RFC 4285 5.2) and BAs carry the option; nil or
	// ok == false: BUs for it are accepted without. A home agent only.
	MNHAKeys func(hoa netip.Addr) (key MNHAKey, ok bool)
	// RequireAuth refuses BUs for home addresses that MNHAKeys has no key
	// for, with status 129 (Result.Refused RefusedNoKey); false accepts
	// them unauthenticated. A home agent only.
	RequireAuth bool

	// MaxBAPerSecondPerHoA limits the BAs sent about one home address;
	// default proto.MaxUpdateRatePerSecond (3), negative: no limit.
	MaxBAPerSecondPerHoA int
	// MaxBAPerSecondNew limits, all together, the BAs about home addresses
	// that have no cache entry (first registrations and rejections of
	// unknown addresses); default 1000, negative: no limit.
	MaxBAPerSecondNew int

	// BRRLead is how long before expiry a Binding Refresh Request is due
	// (draft 6.4); default a tenth of the granted lifetime, at most 30 s.
	// It is never more than half the lifetime. Negative: no BRRs.
	BRRLead time.Duration

	// MaxBindingsPerHoA and MaxBindings bound the cache (status 130,
	// insufficient resources, beyond them); defaults 64 and 4,194,304.
	MaxBindingsPerHoA int
	MaxBindings       int

	// MobileRouters returns the mobile network prefixes a home address may
	// register as a NEMO mobile router (RFC 3963); ok false (or nil, or no
	// prefix): it is not one, and BUs with the R flag get status 140. A
	// home agent only. The cache does not modify the slice.
	MobileRouters func(hoa netip.Addr) (prefixes []netip.Prefix, ok bool)
}

const (
	defaultMaxLifetime    = 420 * time.Second
	maxRRLifetime         = proto.MaxRRBindingLifetimeSec * time.Second
	defaultNewRate        = 1000
	defaultBRRLeadCap     = 30 * time.Second
	defaultMaxPerHoA      = 64
	defaultMaxBindings    = 4 << 20
	lifetimeUnit          = proto.LifetimeUnitSeconds * time.Second
	maxLifetimeUnitsField = 0xffff
)

func (c Config) withDefaults() Config {
	if c.Profile == nil {
		c.Profile = proto.Draft00
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = defaultMaxLifetime
	}
	if c.Role == RoleCN {
		c.MaxLifetime = min(c.MaxLifetime, maxRRLifetime)
		c.BulkRegistration = false
		c.KeyManagement = false
		c.MNHAKeys = nil
		c.RequireAuth = false
		c.MobileRouters = nil
	}
	if c.MaxBAPerSecondPerHoA == 0 {
		c.MaxBAPerSecondPerHoA = proto.MaxUpdateRatePerSecond
	}
	if c.MaxBAPerSecondNew == 0 {
		c.MaxBAPerSecondNew = defaultNewRate
	}
	if c.MaxBindingsPerHoA <= 0 {
		c.MaxBindingsPerHoA = defaultMaxPerHoA
	}
	if c.MaxBindings <= 0 {
		c.MaxBindings = defaultMaxBindings
	}
	return c
}

// maxUnits is the largest lifetime granted, in units of 4 seconds.
func (c *Config) maxUnits() uint16 {
	u := c.MaxLifetime / lifetimeUnit
	switch {
	case u < 1:
		return 1
	case u > maxLifetimeUnitsField:
		return maxLifetimeUnitsField
	}
	return uint16(u)
}

// brrLead is the BRR lead for a lifetime; 0 means no BRR.
func (c *Config) brrLead(life time.Duration) time.Duration {
	if c.BRRLead < 0 {
		return 0
	}
	lead := c.BRRLead
	if lead == 0 {
		lead = min(life/10, defaultBRRLeadCap)
	}
	return min(lead, life/2)
}
