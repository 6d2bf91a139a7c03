package config

import (
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

var haHead = []string{
	"[home_agent]",
	`address     = "2001:db8:aaaa::1"`,
	`interface   = "home0"`,
	`home_prefix = "2001:db8:aaaa::/64"`,
}

// haOpen is haHead for tests about other things than authentication: a
// home agent without keys needs allow_unauthenticated.
var haOpen = append(append([]string{}, haHead...), `allow_unauthenticated = true`)

// labHA is what haHead parses to (labOpenHA: haOpen).
func labHA() *HA {
	c := DefaultHA()
	h := &c.HomeAgent
	h.Address = netip.MustParseAddr("2001:db8:aaaa::1")
	h.Interface = "home0"
	h.HomePrefix = netip.MustParsePrefix("2001:db8:aaaa::/64")
	h.Serve = []netip.Prefix{h.HomePrefix}
	return c
}

func labOpenHA() *HA {
	c := labHA()
	c.HomeAgent.RequireAuth = false
	return c
}

func TestParseHAValid(t *testing.T) {
	key := Secret("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff")
	tests := []struct {
		name string
		src  string
		want func(c *HA)
	}{
		{"minimal", withHead(haOpen), func(c *HA) {}},
		{"design example", lines(
			`[home_agent]`,
			`address     = "2001:db8:aaaa::1"`,
			`interface   = "home0"                  # home link: proxy neighbour advertisements`,
			`home_prefix = "2001:db8:aaaa::/64"`,
			`serve       = ["2001:db8:aaaa::/64"]   # home addresses it accepts BUs for`,
			`bulk_registration = true               # false: answer bulk BUs with 146`,
			`max_lifetime = 420`,
			`profile      = "draft-00"`,
			`bid_option_type = 35`,
			``,
			`[correspondent]`,
			`enabled = false`,
			``,
			`[dataplane]`,
			`backend = "auto"`,
			``,
			`[control]`,
			`socket = "/run/mcoad/mcoa-ha.sock"`,
			// Authentication is the default: the design card's example
			// needs a key for its mobile node (or allow_unauthenticated).
			`[[home_agent.mn]]`,
			`home_address = "2001:db8:aaaa::100"`,
			`spi = 300`,
			`key = "`+testKeyHex+`"`,
		), func(c *HA) {
			c.HomeAgent.MNs = []HAMobileNode{{HomeAddress: netip.MustParseAddr("2001:db8:aaaa::100"), SPI: 300, Key: key}}
		}},
		{"every key", withHead(haHead,
			`serve = ["2001:db8:aaaa::/64", "2001:db8:bbbb::/48"]`,
			`bulk_registration = false`,
			`max_lifetime = "1h"`,
			`bid_option_type = 99`,
			`require_auth = true`,
			`state_dir = "/srv/mcoa-ha"`,
			`[[home_agent.mn]]`,
			`home_address = "2001:db8:aaaa::100"`,
			`spi = 1000`,
			`key = "`+testKeyHex+`"`,
			`prefixes = ["2001:db8:aaab::/64"]`,
			`[[home_agent.mn]]`,
			`home_address = "2001:db8:bbbb::7"`,
			`[correspondent]`,
			`enabled = true`,
			`[dataplane]`,
			`backend = "tun"`,
			`[control]`,
			`socket = "/run/ha.sock"`,
			`group = "wheel"`,
			`[log]`,
			`level = "warn"`,
		), func(c *HA) {
			h := &c.HomeAgent
			h.Serve = append(h.Serve, netip.MustParsePrefix("2001:db8:bbbb::/48"))
			h.BulkRegistration = false
			h.MaxLifetime = time.Hour
			h.BIDOptionType = 99
			h.RequireAuth = true
			h.StateDir = "/srv/mcoa-ha"
			h.MNs = []HAMobileNode{
				{HomeAddress: netip.MustParseAddr("2001:db8:aaaa::100"), SPI: 1000, Key: key,
					Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:aaab::/64")}},
				{HomeAddress: netip.MustParseAddr("2001:db8:bbbb::7")},
			}
			c.Correspondent.Enabled = true
			c.Correspondent.Addresses = []netip.Addr{h.Address}
			c.Correspondent.BIDOptionType = 99
			c.Dataplane.Backend = BackendTUN
			c.Control = Control{Socket: "/run/ha.sock", Group: "wheel"}
			c.Log.Level = slog.LevelWarn
		}},
		{"serve replaces the default", withHead(haOpen, `serve = ["2001:db8:bbbb::/48"]`), func(c *HA) {
			c.HomeAgent.Serve = []netip.Prefix{netip.MustParsePrefix("2001:db8:bbbb::/48")}
		}},
		{"max lifetime rounded down", withHead(haOpen, `max_lifetime = 7`), func(c *HA) {
			c.HomeAgent.MaxLifetime = 4 * time.Second
			c.Correspondent.MaxLifetime = 4 * time.Second
		}},
		{"both roles, correspondent keys", withHead(haOpen, `max_lifetime = 100`,
			`[correspondent]`, `enabled = true`, `address = ["2001:db8:cccc::1", "2001:db8:aaaa::1"]`, `max_lifetime = "5m"`,
		), func(c *HA) {
			c.HomeAgent.MaxLifetime = 100 * time.Second
			c.Correspondent = CNResponder{Enabled: true, MaxLifetime: 300 * time.Second, Profile: DefaultProfile, BIDOptionType: DefaultBIDOptionType,
				Addresses: []netip.Addr{netip.MustParseAddr("2001:db8:cccc::1"), netip.MustParseAddr("2001:db8:aaaa::1")}}
		}},
		{"correspondent lifetime follows the home agent's below 420 s", withHead(haOpen, `max_lifetime = 200`,
			`[correspondent]`, `enabled = true`), func(c *HA) {
			c.HomeAgent.MaxLifetime = 200 * time.Second
			c.Correspondent.Enabled = true
			c.Correspondent.Addresses = []netip.Addr{c.HomeAgent.Address}
			c.Correspondent.MaxLifetime = 200 * time.Second
		}},
		{"correspondent off keeps its defaults", withHead(haOpen, `[correspondent]`, `enabled = false`), func(c *HA) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHA("ha.toml", []byte(tt.src), noRead)
			if err != nil {
				t.Fatalf("error:\n%v", err)
			}
			want := labHA()
			if strings.Contains(tt.src, "allow_unauthenticated = true") {
				want = labOpenHA()
			}
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if !got.HomeAgentRole() {
				t.Errorf("HomeAgentRole false with [home_agent]")
			}
		})
	}
}

// A correspondent node alone: no [home_agent]; its address, lifetime and
// wire profile are [correspondent]'s.
func TestParseHACorrespondentOnly(t *testing.T) {
	cn := netip.MustParseAddr("2001:db8:cccc::1")
	tests := []struct {
		name string
		src  string
		want CNResponder
	}{
		{"minimal", lines(`[correspondent]`, `enabled = true`, `address = "2001:db8:cccc::1"`),
			CNResponder{Enabled: true, Addresses: []netip.Addr{cn}, MaxLifetime: MaxRRLifetime, Profile: DefaultProfile, BIDOptionType: DefaultBIDOptionType}},
		{"every key", lines(`[correspondent]`, `enabled = true`,
			`address = ["2001:db8:cccc::1", "2001:db8:cccc::2"]`, `max_lifetime = 99`, `profile = "draft-00"`, `bid_option_type = 77`,
			`[dataplane]`, `backend = "tun"`),
			CNResponder{Enabled: true, Addresses: []netip.Addr{cn, netip.MustParseAddr("2001:db8:cccc::2")},
				MaxLifetime: 96 * time.Second, Profile: DefaultProfile, BIDOptionType: 77}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHA("ha.toml", []byte(tt.src), noRead)
			if err != nil {
				t.Fatalf("error:\n%v", err)
			}
			if got.HomeAgentRole() {
				t.Errorf("HomeAgentRole true without [home_agent]: %+v", got.HomeAgent)
			}
			if !got.Correspondent.Equal(tt.want) || !reflect.DeepEqual(got.Correspondent, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got.Correspondent, tt.want)
			}
			if !reflect.DeepEqual(got.HomeAgent, DefaultHA().HomeAgent) {
				t.Errorf("home agent not left at its defaults: %+v", got.HomeAgent)
			}
			p, err := got.WireProfile()
			if err != nil || uint8(p.BIDOptionType) != tt.want.BIDOptionType {
				t.Errorf("WireProfile = %v, %v; want BID option type %d", p, err, tt.want.BIDOptionType)
			}
		})
	}
}

func TestParseHAInvalid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []wantErr
	}{
		{"nothing", "", []wantErr{
			{0, "home_agent", "is required unless [correspondent] enabled = true"},
		}},
		{"correspondent off and no home agent", lines(`[correspondent]`, `enabled = false`, `address = "2001:db8:cccc::1"`), []wantErr{
			{2, "home_agent", "is required unless [correspondent] enabled = true"},
		}},
		{"correspondent alone without address", lines(`[correspondent]`, `enabled = true`, `max_lifetime = 424`), []wantErr{
			{1, "correspondent.address", "is required"},
			{3, "correspondent.max_lifetime", "out of range"},
		}},
		{"correspondent addresses", lines(`[correspondent]`, `enabled = true`,
			`address = ["2001:db8:cccc::1", "fe80::1", "2001:db8:cccc::1", 7]`, `profile = "rfc"`, `bid_option_type = 6`), []wantErr{
			{3, "correspondent.address[3]", "must be a string"},
			{3, "correspondent.address[1]", "not a global unicast"},
			{3, "correspondent.address[2]", "listed twice"},
			{4, "correspondent.profile", "unknown wire profile"},
			{5, "correspondent.bid_option_type", "collides"},
		}},
		{"correspondent address types", lines(`[correspondent]`, `enabled = true`, `address = []`), []wantErr{
			{3, "correspondent.address", "is empty"},
		}},
		{"correspondent address not an address", lines(`[correspondent]`, `enabled = true`, `address = 5`, `adress = "x"`), []wantErr{
			{3, "correspondent.address", "must be an address or an array of addresses"},
			{4, "correspondent.adress", "unknown key"},
		}},
		{"profile belongs to the home agent with both roles", withHead(haOpen, `[correspondent]`, `enabled = true`,
			`profile = "draft-00"`, `bid_option_type = 36`), []wantErr{
			{8, "correspondent.profile", "is home_agent.profile when both roles run"},
			{9, "correspondent.bid_option_type", "is home_agent.bid_option_type when both roles run"},
		}},
		{"an empty home agent section is a home agent", lines(`[home_agent]`, `[correspondent]`, `enabled = true`), []wantErr{
			{1, "home_agent", "fill in address, interface, home_prefix (see the comments in the file)"},
		}},
		{"home agent off its home link", lines(
			`[home_agent]`,
			`address     = "2001:db8:bbbb::1"`,
			`interface   = "home0/1"`,
			`home_prefix = "2001:db8:aaaa::/64"`,
			`allow_unauthenticated = true`,
		), []wantErr{
			{2, "home_agent.address", "is not inside home_prefix"},
			{3, "home_agent.interface", `"home0/1" is not a valid interface name`},
		}},
		{"interface name too long", lines(
			`[home_agent]`,
			`address     = "2001:db8:aaaa::1"`,
			`interface   = "a234567890123456"`,
			`home_prefix = "2001:db8:aaaa::/64"`,
			`allow_unauthenticated = true`,
		), []wantErr{{3, "home_agent.interface", "not a valid interface name"}}},
		{"serve", withHead(haOpen, `serve = []`), []wantErr{{6, "home_agent.serve", "is empty"}}},
		{"state_dir relative", withHead(haOpen, `state_dir = "var/lib/mcoa-ha"`),
			[]wantErr{{6, "home_agent.state_dir", "not an absolute path"}}},
		{"state_dir not a string", withHead(haOpen, `state_dir = 1`),
			[]wantErr{{6, "home_agent.state_dir", "must be a string"}}},
		{"serve elements", withHead(haOpen, `serve = [`, `  "2001:db8:aaaa::/64",`, `  "2001:db8:bbbb::1/48",`, `  true,`, `]`),
			[]wantErr{
				{8, "home_agent.serve[1]", "has bits set after the prefix length"},
				{9, "home_agent.serve[2]", "must be a string, not a boolean"},
			}},
		{"lifetime", withHead(haOpen, `max_lifetime = 0`, `bulk_registration = "no"`, `profile = ""`),
			[]wantErr{
				{6, "home_agent.max_lifetime", "out of range"},
				{7, "home_agent.bulk_registration", "must be true or false"},
				{8, "home_agent.profile", "unknown wire profile"},
			}},
		{"mobile nodes", withHead(haHead,
			`serve = ["2001:db8:aaaa::/64"]`, // 5
			`require_auth = true`,
			`[[home_agent.mn]]`, // 7
			`spi = 1000`,
			`[[home_agent.mn]]`, // 9
			`home_address = "2001:db8:aaaa::100"`,
			`key = "`+testKeyHex+`"`,
			`[[home_agent.mn]]`, // 12
			`home_address = "2001:db8:aaaa:0::100"`,
			`spi = 12`,
			`key = "00"`,
			`[[home_agent.mn]]`, // 16
			`home_address = "2001:db8:cccc::100"`,
			`prefixes = ["2001:db8:aaab::1/64"]`,
			`[[home_agent.mn]]`, // 19
			`home_address = "2001:db8:aaaa::1"`,
			`pin = 3`,
		), []wantErr{
			{7, "home_agent.mn[0].home_address", "is required"},
			{8, "home_agent.mn[0].key", "is required with spi"},
			{11, "home_agent.mn[1].spi", "is required with key"},
			{13, "home_agent.mn[2].home_address", "2001:db8:aaaa::100 is already listed at home_agent.mn[1]"},
			{14, "home_agent.mn[2].spi", "12 is out of range 256..4294967295"},
			{15, "home_agent.mn[2].key", "key is 1 bytes"},
			{17, "home_agent.mn[3].home_address", "not inside any serve prefix"},
			{18, "home_agent.mn[3].prefixes[0]", "has bits set"},
			{20, "home_agent.mn[4].home_address", "is the home agent's address"},
			{21, "home_agent.mn[4].pin", "unknown key (did you mean spi?)"},
		}},
		{"mobile network prefixes", withHead(haOpen,
			`[[home_agent.mn]]`, // 5
			`home_address = "2001:db8:aaaa::100"`,
			`prefixes = ["2001:db8:aaab::/48", "2001:db8:aaaa:0:8000::/65"]`,
			`[[home_agent.mn]]`, // 8
			`home_address = "2001:db8:aaaa::101"`,
			`prefixes = ["2001:db8:aaac::/64", "2001:db8:aaab:5::/64", "x"]`,
		), []wantErr{
			{8, "home_agent.mn[0].prefixes[1]", "overlaps home_prefix 2001:db8:aaaa::/64"},
			{11, "home_agent.mn[1].prefixes[1]", "overlaps 2001:db8:aaab::/48 at home_agent.mn[0].prefixes[0]"},
			{11, "home_agent.mn[1].prefixes[2]", `"x" is not an IPv6 prefix`},
		}},
		{"require_auth without keys", withHead(haHead, `require_auth = true`, `[[home_agent.mn]]`, `home_address = "2001:db8:aaaa::100"`),
			[]wantErr{{5, "home_agent.require_auth", "no [[home_agent.mn]] has an spi and key"}}},
		{"mn must be an array of tables", withHead(haOpen, `[home_agent.mn]`, `home_address = "2001:db8:aaaa::100"`),
			[]wantErr{{6, "home_agent.mn", "must be an array of tables"}}},
		{"MN-only sections are unknown", withHead(haOpen, `[[interface]]`, `match = "x"`, `[correspondent]`, `enabled = 1`, `route_optimization = true`),
			[]wantErr{
				{6, "interface", "unknown section"},
				{9, "correspondent.enabled", "must be true or false"},
				{10, "correspondent.route_optimization", "unknown key"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseHA("ha.toml", []byte(tt.src), noRead)
			checkRejected(t, "ha.toml", c, err, tt.want)
		})
	}
}

// home_agent.state_dir defaults to DefaultHAStateDir, also for a
// correspondent node alone (which keeps no state there).
func TestParseHAStateDirDefault(t *testing.T) {
	for _, src := range []string{withHead(haOpen), lines(`[correspondent]`, `enabled = true`, `address = "2001:db8:cccc::1"`)} {
		c, err := parseHA("ha.toml", []byte(src), noRead)
		if err != nil {
			t.Fatal(err)
		}
		if c.HomeAgent.StateDir != DefaultHAStateDir || DefaultHAStateDir != "/var/lib/mcoa-ha" {
			t.Errorf("state_dir = %q, want %q", c.HomeAgent.StateDir, DefaultHAStateDir)
		}
	}
}

// Authentication is the default; allow_unauthenticated = true and its
// older spelling require_auth = false turn it off, and the two must agree.
func TestParseHAAuthPolicy(t *testing.T) {
	keyed := []string{`[[home_agent.mn]]`, `home_address = "2001:db8:aaaa::100"`, `spi = 300`, `key = "` + testKeyHex + `"`}
	for _, tt := range []struct {
		name    string
		lines   []string
		require bool
	}{
		{"default", nil, true},
		{"allow_unauthenticated", []string{`allow_unauthenticated = true`}, false},
		{"allow_unauthenticated false", []string{`allow_unauthenticated = false`}, true},
		{"require_auth false, the older spelling", []string{`require_auth = false`}, false},
		{"require_auth true", []string{`require_auth = true`}, true},
		{"both agree, off", []string{`require_auth = false`, `allow_unauthenticated = true`}, false},
		{"both agree, on", []string{`allow_unauthenticated = false`, `require_auth = true`}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseHA("ha.toml", []byte(withHead(haHead, append(append([]string{}, tt.lines...), keyed...)...)), noRead)
			if err != nil {
				t.Fatal(err)
			}
			if c.HomeAgent.RequireAuth != tt.require {
				t.Errorf("RequireAuth = %v, want %v", c.HomeAgent.RequireAuth, tt.require)
			}
		})
	}
	for _, tt := range []struct {
		name  string
		lines []string
		want  []wantErr
	}{
		{"contradiction, allow second", []string{`require_auth = true`, `allow_unauthenticated = true`},
			[]wantErr{{6, "home_agent.allow_unauthenticated", "contradicts require_auth = true (line 5)"}}},
		{"contradiction, require second", []string{`allow_unauthenticated = false`, `require_auth = false`},
			[]wantErr{{6, "home_agent.require_auth", "contradicts allow_unauthenticated = false (line 5)"}}},
		{"not a boolean", []string{`allow_unauthenticated = "yes"`},
			[]wantErr{{5, "home_agent.allow_unauthenticated", "must be true or false"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseHA("ha.toml", []byte(withHead(haHead, append(append([]string{}, tt.lines...), keyed...)...)), noRead)
			checkRejected(t, "ha.toml", c, err, tt.want)
		})
	}
	// Without any key and without allow_unauthenticated, every BU would be
	// refused: that is an error naming the way out.
	_, err := parseHA("ha.toml", []byte(withHead(haHead)), noRead)
	checkErrs(t, "ha.toml", err, []wantErr{{1, "home_agent", "no [[home_agent.mn]] has an spi and key, so every binding update would be refused: add one (`mcoactl genkey` prints it) or set allow_unauthenticated = true"}})
}
