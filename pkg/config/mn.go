package config

import (
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// DefaultMN returns mcoad's defaults. The required keys (home address,
// home agent, home prefix) are left zero.
func DefaultMN() *MN {
	return &MN{
		MobileNode: MobileNode{
			Lifetime:         DefaultLifetime,
			BIDMode:          BIDPerInterface,
			Registration:     RegBulk,
			Profile:          DefaultProfile,
			BIDOptionType:    DefaultBIDOptionType,
			StateDir:         DefaultStateDir,
			ReturnHome:       ReturnHomeAll,
			DeregisterOnStop: true,
			Liveness:         true,
		},
		Dataplane:    defaultDataplane(),
		Control:      Control{Socket: DefaultMNSocket, Group: DefaultGroup},
		Log:          defaultLog(),
		MobileRouter: MobileRouter{Mode: NEMOExplicit},
	}
}

// LoadMN reads and validates mcoad's configuration file.
func LoadMN(path string) (*MN, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseMN(path, data)
}

// ParseMN validates mcoad's configuration; name is the file name used in
// errors and to resolve relative key file paths. A bad configuration gives
// an Errors listing every problem.
func ParseMN(name string, data []byte) (*MN, error) {
	return parseMN(name, data, readKeyFile)
}

func parseMN(name string, data []byte, read readFunc) (*MN, error) {
	root, w, err := decode(name, data, read)
	if err != nil {
		return nil, err
	}
	c := DefaultMN()
	root.sub("mobile_node").mobileNode(&c.MobileNode)
	c.Interfaces = w.interfaces(root.list("interface"), c.MobileNode.BIDMode)
	c.Correspondents = w.correspondents(root.list("correspondent"), c.MobileNode.HomeAddress)
	c.Policies = w.policies(root.list("policy"))
	root.sub("dataplane").dataplane(&c.Dataplane)
	root.sub("control").control(&c.Control)
	root.sub("log").log(&c.Log)
	root.sub("mobile_router").mobileRouter(&c.MobileRouter, c.MobileNode.HomePrefix)
	root.done()
	if err := w.result(); err != nil {
		return nil, err
	}
	return c, nil
}

func (t *tbl) mobileNode(m *MobileNode) {
	hoa := t.addr("home_address", &m.HomeAddress)
	ha := t.addr("home_agent", &m.HomeAgent)
	pfx := t.pfx("home_prefix", &m.HomePrefix)
	t.requireAll("home_address", "home_agent", "home_prefix")
	if hoa && pfx && !m.HomePrefix.Contains(m.HomeAddress) {
		t.w.errf(t.at("home_address"), "%s is not inside home_prefix %s", m.HomeAddress, m.HomePrefix)
	}
	if hoa && ha && m.HomeAddress == m.HomeAgent {
		t.w.errf(t.at("home_agent"), "%s is the home address", m.HomeAgent)
	}
	t.lifetime("lifetime", &m.Lifetime)
	if s, ok := t.enum("bid_mode", string(BIDPerInterface), string(BIDPerCoA)); ok {
		m.BIDMode = BIDMode(s)
	}
	if s, ok := t.enum("registration", string(RegBulk), string(RegIndividual)); ok {
		m.Registration = Registration(s)
	}
	t.profile(&m.Profile, &m.BIDOptionType)
	if s, ok := t.str("state_dir"); ok && t.w.absPath(t.at("state_dir"), s) {
		m.StateDir = s
	}
	if s, ok := t.enum("return_home", string(ReturnHomeAll), string(ReturnHomeKeepForeign)); ok {
		m.ReturnHome = ReturnHome(s)
	}
	t.boolean("deregister_on_stop", &m.DeregisterOnStop)
	t.boolean("allow_deprecated", &m.AllowDeprecated)
	t.boolean("liveness", &m.Liveness)
	t.auth("mnha_spi", "mnha_key", &m.MNHASPI, &m.MNHAKey)
	t.done()
}

func (w *walker) interfaces(list []*tbl, mode BIDMode) []Interface {
	var out []Interface
	bids := map[uint16]string{}
	patterns := map[string]string{}
	for _, t := range list {
		var it Interface
		if s, ok := t.str("match"); ok && w.glob(t.at("match"), s) {
			it.Match = s
			if prev, dup := patterns[s]; dup {
				w.errf(t.at("match"), "%q is already matched by %s (first match wins, so this rule never applies)", s, prev)
			}
			patterns[s] = displayKey(t.path)
		} else if !t.has("match") {
			t.required("match")
		}
		t.boolean("exclude", &it.Exclude)
		if n, ok := t.integer("priority", 0, 255); ok {
			it.Priority = uint8(n)
		}
		it.MeteredPriority = it.Priority
		if n, ok := t.integer("metered_priority", 0, 255); ok {
			it.MeteredPriority = uint8(n)
		}
		if d, ok := t.seconds("probe_interval", MinProbeInterval, MaxProbeInterval); ok {
			it.ProbeInterval = d
		}
		if d, ok := t.seconds("probe_idle", MinProbeInterval, MaxProbeIdle); ok {
			it.ProbeIdle = d
			if it.ProbeInterval > 0 && d < it.ProbeInterval {
				w.errf(t.at("probe_idle"), "%v is shorter than probe_interval %v", d, it.ProbeInterval)
			}
		}
		if n, ok := t.integer("probe_multiplier", 1, 20); ok {
			it.ProbeMultiplier = int(n)
		}
		if d, ok := t.seconds("hold_down", 0, MaxHoldDown); ok {
			it.HoldDown = d
		}
		if n, ok := t.integer("bid", 1, 65535); ok {
			switch b := uint16(n); {
			case it.Exclude:
				w.errf(t.at("bid"), "an excluded interface has no BID")
			case mode != BIDPerInterface:
				w.errf(t.at("bid"), "a fixed BID needs bid_mode = %q", BIDPerInterface)
			case bids[b] != "":
				w.errf(t.at("bid"), "BID %d is already used by %s", b, bids[b])
			default:
				it.BID = b
				bids[b] = displayKey(t.path)
			}
		}
		t.done()
		out = append(out, it)
	}
	return out
}

func (w *walker) correspondents(list []*tbl, hoa netip.Addr) []Correspondent {
	var out []Correspondent
	seen := map[netip.Addr]string{}
	for _, t := range list {
		c := Correspondent{RouteOptimization: true}
		if t.addr("address", &c.Address) {
			if prev, dup := seen[c.Address]; dup {
				w.errf(t.at("address"), "%s is already listed at %s", c.Address, prev)
			} else if c.Address == hoa {
				w.errf(t.at("address"), "%s is the home address", c.Address)
			}
			seen[c.Address] = displayKey(t.path)
		} else if !t.has("address") {
			t.required("address")
		}
		t.boolean("route_optimization", &c.RouteOptimization)
		t.done()
		out = append(out, c)
	}
	return out
}

func (w *walker) policies(list []*tbl) []Policy {
	var out []Policy
	names := map[string]string{}
	for _, t := range list {
		p := Policy{Protocol: ProtoAny}
		if s, ok := t.str("name"); ok {
			switch prev, dup := names[s]; {
			case s == "":
				w.errf(t.at("name"), "is empty")
			case dup:
				w.errf(t.at("name"), "%q is already the name of %s", s, prev)
			default:
				p.Name = s
				names[s] = displayKey(t.path)
			}
		} else if !t.has("name") {
			t.required("name")
		}
		if s, ok := t.enum("protocol", string(ProtoTCP), string(ProtoUDP), string(ProtoICMPv6), string(ProtoAny)); ok {
			p.Protocol = Protocol(s)
		}
		t.pfx("src_prefix", &p.SrcPrefix)
		t.pfx("dst_prefix", &p.DstPrefix)
		for _, pk := range []struct {
			key string
			dst *PortRange
		}{{"src_port", &p.SrcPort}, {"dst_port", &p.DstPort}} {
			if r, ok := t.ports(pk.key); ok {
				if p.Protocol != ProtoTCP && p.Protocol != ProtoUDP {
					w.errf(t.at(pk.key), "ports need protocol = \"tcp\" or \"udp\"")
				} else {
					*pk.dst = r
				}
			}
		}
		if s, ok := t.str("user"); ok {
			if err := CheckPolicyUser(s); err != nil {
				w.errf(t.at("user"), "%v", err)
			} else {
				p.User = s
			}
		}
		if s, ok := t.str("cgroup"); ok {
			if err := CheckPolicyCgroup(s); err != nil {
				w.errf(t.at("cgroup"), "%v", err)
			} else {
				p.Cgroup = s
			}
		}
		if vals, paths, ok := t.strs("prefer"); ok {
			if len(vals) == 0 && len(paths) == 0 {
				w.errf(t.at("prefer"), "is empty")
			}
			for i, s := range vals {
				if pr, ok := w.preference(paths[i], s); ok {
					p.Prefer = append(p.Prefer, pr)
				}
			}
		} else if !t.has("prefer") {
			t.required("prefer")
		}
		t.done()
		out = append(out, p)
	}
	return out
}

func (w *walker) preference(p, s string) (Preference, bool) {
	if n, ok := strings.CutPrefix(s, "bid:"); ok {
		b, err := strconv.ParseUint(n, 10, 16)
		if err != nil || b == 0 {
			w.errf(p, "%q: a BID is 1..65535", s)
			return Preference{}, false
		}
		return Preference{BID: uint16(b)}, true
	}
	if !w.glob(p, s) {
		return Preference{}, false
	}
	return Preference{Interface: s}, true
}

// ports reads a port (5060) or range ("5060-5061").
func (t *tbl) ports(k string) (PortRange, bool) {
	v, ok := t.get(k)
	if !ok {
		return PortRange{}, false
	}
	bad := func(s string) (PortRange, bool) {
		t.w.errf(t.at(k), "%s is not a port or port range (5060 or \"5060-5061\", ports 1..65535)", s)
		return PortRange{}, false
	}
	switch v := v.(type) {
	case int64:
		if v < 1 || v > 65535 {
			return bad(strconv.FormatInt(v, 10))
		}
		return PortRange{uint16(v), uint16(v)}, true
	case string:
		los, his, isRange := strings.Cut(v, "-")
		if !isRange {
			his = los
		}
		lo, err1 := strconv.ParseUint(strings.TrimSpace(los), 10, 16)
		hi, err2 := strconv.ParseUint(strings.TrimSpace(his), 10, 16)
		if err1 != nil || err2 != nil || lo == 0 || hi == 0 {
			return bad(strconv.Quote(v))
		}
		if lo > hi {
			t.w.errf(t.at(k), "%q: the low port is above the high port", v)
			return PortRange{}, false
		}
		return PortRange{uint16(lo), uint16(hi)}, true
	}
	t.w.typeErr(t.at(k), "a port number or a \"lo-hi\" range string", v)
	return PortRange{}, false
}

func (t *tbl) mobileRouter(r *MobileRouter, home netip.Prefix) {
	t.boolean("enabled", &r.Enabled)
	vals, paths, ok := t.strs("prefixes")
	for i, s := range vals {
		pf, ok := t.w.prefix(paths[i], s)
		if !ok {
			continue
		}
		if home.IsValid() && pf.Overlaps(home) {
			t.w.errf(paths[i], "%s overlaps home_prefix %s", pf, home)
			continue
		}
		if j := slices.IndexFunc(r.Prefixes, pf.Overlaps); j >= 0 {
			t.w.errf(paths[i], "%s overlaps %s listed before it", pf, r.Prefixes[j])
			continue
		}
		r.Prefixes = append(r.Prefixes, pf)
	}
	if r.Enabled && (!ok || len(vals) == 0) {
		t.w.errf(t.at("prefixes"), "a mobile router needs at least one mobile network prefix")
	}
	if s, ok := t.enum("mode", string(NEMOExplicit), string(NEMOImplicit)); ok {
		r.Mode = NEMOMode(s)
	}
	names, npaths, _ := t.strs("ingress")
	for i, n := range names {
		switch {
		case !t.w.ifname(npaths[i], n):
		case slices.Contains(r.Ingress, n):
			t.w.errf(npaths[i], "%q is listed twice", n)
		default:
			r.Ingress = append(r.Ingress, n)
		}
	}
	t.done()
}
