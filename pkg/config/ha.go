package config

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
)

// DefaultHAStateDir is where mcoa-ha keeps its binding cache
// (home_agent.state_dir).
const DefaultHAStateDir = "/var/lib/mcoa-ha"

// DefaultHA returns mcoa-ha's defaults. The required keys (address,
// interface, home prefix) are left zero.
func DefaultHA() *HA {
	return &HA{
		HomeAgent: HomeAgent{
			BulkRegistration: true,
			MaxLifetime:      DefaultLifetime,
			Profile:          DefaultProfile,
			BIDOptionType:    DefaultBIDOptionType,
			StateDir:         DefaultHAStateDir,
			RequireAuth:      true,
		},
		Correspondent: CNResponder{
			MaxLifetime:   MaxRRLifetime,
			Profile:       DefaultProfile,
			BIDOptionType: DefaultBIDOptionType,
		},
		Dataplane: defaultDataplane(),
		Control:   Control{Socket: DefaultHASocket, Group: DefaultGroup},
		Log:       defaultLog(),
	}
}

// LoadHA reads and validates mcoa-ha's configuration file.
func LoadHA(path string) (*HA, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseHA(path, data)
}

// ParseHA validates mcoa-ha's configuration; see ParseMN.
func ParseHA(name string, data []byte) (*HA, error) {
	return parseHA(name, data, readKeyFile)
}

func parseHA(name string, data []byte, read readFunc) (*HA, error) {
	root, w, err := decode(name, data, read)
	if err != nil {
		return nil, err
	}
	c := DefaultHA()
	// Either role may run alone: a file without [home_agent] is a
	// correspondent node (its [correspondent] says enabled = true).
	haOK := root.has("home_agent")
	if haOK {
		root.sub("home_agent").homeAgent(&c.HomeAgent)
	}
	cn := root.sub("correspondent")
	cn.correspondent(&c.Correspondent, haOK, &c.HomeAgent)
	if !haOK && !c.Correspondent.Enabled {
		at := "home_agent"
		if cn.has("enabled") {
			at = cn.at("enabled")
		}
		root.w.errAt(at, "home_agent", "is required unless [correspondent] enabled = true (a correspondent node alone)")
	}
	root.sub("dataplane").dataplane(&c.Dataplane)
	root.sub("control").control(&c.Control)
	root.sub("log").log(&c.Log)
	root.done()
	if err := w.result(); err != nil {
		return nil, err
	}
	return c, nil
}

func (t *tbl) homeAgent(h *HomeAgent) {
	addr, pfx, missing := t.homeLink(h)
	t.boolean("bulk_registration", &h.BulkRegistration)
	t.lifetime("max_lifetime", &h.MaxLifetime)
	t.profile(&h.Profile, &h.BIDOptionType)
	t.authPolicy(&h.RequireAuth)
	if s, ok := t.str("state_dir"); ok && t.w.absPath(t.at("state_dir"), s) {
		h.StateDir = s
	}
	mns := haMobileNodes{h: h, addrOK: addr, pfxOK: pfx, seen: map[netip.Addr]string{}}
	for _, m := range t.list("mn") {
		mns.add(m)
	}
	// A home agent that would refuse every BU is a mistake, not a policy;
	// but with the required keys still missing (the shipped file) the
	// line naming them is the one to read first.
	if h.RequireAuth && !mns.keyed && missing == 0 {
		const msg = "no [[home_agent.mn]] has an spi and key, so every binding update would be refused: " +
			"add one (`mcoactl genkey` prints it) or set allow_unauthenticated = true"
		if t.has("require_auth") {
			t.w.errf(t.at("require_auth"), msg)
		} else {
			t.w.errf(t.path, msg)
		}
	}
	t.done()
}

// homeLink reads the home agent's place on the home link (address,
// interface, home_prefix) and the prefixes it serves, which default to the
// home prefix. addr and pfx say whether address and home_prefix are valid;
// missing counts the required keys absent.
func (t *tbl) homeLink(h *HomeAgent) (addr, pfx bool, missing int) {
	addr = t.addr("address", &h.Address)
	if s, ok := t.str("interface"); ok && t.w.ifname(t.at("interface"), s) {
		h.Interface = s
	}
	pfx = t.pfx("home_prefix", &h.HomePrefix)
	missing = t.requireAll("address", "interface", "home_prefix")
	if addr && pfx && !h.HomePrefix.Contains(h.Address) {
		t.w.errf(t.at("address"), "%s is not inside home_prefix %s (the home agent sits on the home link)", h.Address, h.HomePrefix)
	}
	if serve, ok := t.prefixes("serve"); ok {
		h.Serve = serve
		if vals, _ := t.m["serve"].([]any); len(vals) == 0 {
			t.w.errf(t.at("serve"), "is empty; list the prefixes of the home addresses to serve")
		}
	} else if !t.has("serve") && pfx {
		h.Serve = []netip.Prefix{h.HomePrefix}
	}
	return addr, pfx, missing
}

// haMobileNodes reads the [[home_agent.mn]] entries into h.MNs, checking
// them against each other and against the home link.
type haMobileNodes struct {
	h             *HomeAgent
	addrOK, pfxOK bool                  // h.Address, h.HomePrefix are valid
	seen          map[netip.Addr]string // home address -> where listed
	claimed       claims                // mobile network prefixes so far
	keyed         bool                  // some entry has an spi and key
}

func (s *haMobileNodes) add(m *tbl) {
	var e HAMobileNode
	if m.addr("home_address", &e.HomeAddress) {
		s.homeAddress(m, e.HomeAddress)
	} else if !m.has("home_address") {
		m.required("home_address")
	}
	m.auth("spi", "key", &e.SPI, &e.Key)
	s.keyed = s.keyed || m.has("spi") && m.has("key")
	e.Prefixes = s.prefixes(m)
	m.done()
	s.h.MNs = append(s.h.MNs, e)
}

// homeAddress checks an entry's home address: listed once, not the home
// agent's, inside a serve prefix.
func (s *haMobileNodes) homeAddress(m *tbl, hoa netip.Addr) {
	h := s.h
	inServe := false
	for _, p := range h.Serve {
		inServe = inServe || p.Contains(hoa)
	}
	switch prev, dup := s.seen[hoa]; {
	case dup:
		m.w.errf(m.at("home_address"), "%s is already listed at %s", hoa, prev)
	case s.addrOK && hoa == h.Address:
		m.w.errf(m.at("home_address"), "%s is the home agent's address", hoa)
	case len(h.Serve) > 0 && !inServe:
		m.w.errf(m.at("home_address"), "%s is not inside any serve prefix", hoa)
	}
	s.seen[hoa] = displayKey(m.path)
}

// prefixes reads a mobile router's prefixes. A mobile network prefix is
// routed to one mobile router: it may not overlap the home link nor
// another router's prefixes.
func (s *haMobileNodes) prefixes(m *tbl) []netip.Prefix {
	var out []netip.Prefix
	vals, paths, _ := m.strs("prefixes")
	for i, v := range vals {
		pf, ok := m.w.prefix(paths[i], v)
		switch {
		case !ok:
		case s.pfxOK && pf.Overlaps(s.h.HomePrefix):
			m.w.errf(paths[i], "%s overlaps home_prefix %s", pf, s.h.HomePrefix)
		default:
			if prev, dup := s.claimed.overlap(pf); dup {
				m.w.errf(paths[i], "%s overlaps %s", pf, prev)
				continue
			}
			s.claimed = append(s.claimed, claim{pf, paths[i]})
			out = append(out, pf)
		}
	}
	return out
}

// authPolicy reads allow_unauthenticated and require_auth into require.
// Authentication is the default; allow_unauthenticated = true turns it
// off, and so does require_auth = false, its older spelling (a file that
// said so explicitly keeps working, with mcoa-ha's start-up warning). Both
// keys set must agree.
func (t *tbl) authPolicy(require *bool) {
	allow, allowSet := t.flag("allow_unauthenticated")
	req, reqSet := t.flag("require_auth")
	switch {
	case allowSet && reqSet && allow == req:
		at, other := "allow_unauthenticated", "require_auth"
		if t.w.lines.line(t.at(at)) < t.w.lines.line(t.at(other)) {
			at, other = other, at
		}
		// Both hold the same value, which is the contradiction.
		t.w.errf(t.at(at), "contradicts %s = %v (line %d): allow_unauthenticated = true is require_auth = false; keep one of them",
			other, allow, t.w.lines.line(t.at(other)))
	case allowSet:
		*require = !allow
	case reqSet:
		*require = req
	}
}

// flag reads a boolean; set is false when k is absent or not a boolean.
func (t *tbl) flag(k string) (v, set bool) {
	if !t.has(k) {
		return false, false
	}
	t.boolean(k, &v)
	_, set = t.m[k].(bool)
	return v, set
}

// correspondent reads [correspondent]. withHA: the file has a
// [home_agent] section (h), whose address and wire profile the
// correspondent then shares.
func (t *tbl) correspondent(c *CNResponder, withHA bool, h *HomeAgent) {
	t.boolean("enabled", &c.Enabled)
	if as, ok := t.addrs("address"); ok {
		c.Addresses = as
	} else if !t.has("address") {
		switch {
		case withHA && h.Address.IsValid():
			if c.Enabled {
				c.Addresses = []netip.Addr{h.Address}
			}
		case !withHA && c.Enabled:
			t.required("address")
		}
	}
	if withHA {
		c.MaxLifetime = min(h.MaxLifetime, MaxRRLifetime)
		c.Profile, c.BIDOptionType = h.Profile, h.BIDOptionType
		for _, k := range []string{"profile", "bid_option_type"} {
			if t.has(k) {
				t.get(k)
				t.w.errf(t.at(k), "is home_agent.%s when both roles run (one socket serves them): set it there", k)
			}
		}
	} else {
		t.profile(&c.Profile, &c.BIDOptionType)
	}
	if d, ok := t.seconds("max_lifetime", MinLifetime, MaxRRLifetime); ok {
		c.MaxLifetime = d - d%MinLifetime
	}
	t.done()
}

// addrs reads one IPv6 address or an array of them (none twice, at
// least one). ok is false when k is absent or nothing valid was read.
func (t *tbl) addrs(k string) ([]netip.Addr, bool) {
	v, ok := t.m[k]
	if !ok {
		return nil, false
	}
	switch v.(type) {
	case string:
		var a netip.Addr
		if t.addr(k, &a) {
			return []netip.Addr{a}, true
		}
		return nil, false
	case []any:
	default:
		t.get(k)
		t.w.typeErr(t.at(k), "an address or an array of addresses", v)
		return nil, false
	}
	vals, paths, _ := t.strs(k)
	if len(vals) == 0 && len(v.([]any)) == 0 {
		t.w.errf(t.at(k), "is empty; list at least one address")
		return nil, false
	}
	var out []netip.Addr
	for i, s := range vals {
		a, ok := t.w.unicast(paths[i], s)
		switch {
		case !ok:
		case slices.Contains(out, a):
			t.w.errf(paths[i], "%s is listed twice", a)
		default:
			out = append(out, a)
		}
	}
	return out, len(out) > 0
}

type claim struct {
	pf   netip.Prefix
	path string
}

type claims []claim

// overlap returns where a prefix overlapping pf was listed.
func (cs claims) overlap(pf netip.Prefix) (string, bool) {
	for _, c := range cs {
		if c.pf.Overlaps(pf) {
			return fmt.Sprintf("%s at %s", c.pf, displayKey(c.path)), true
		}
	}
	return "", false
}
