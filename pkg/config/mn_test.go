package config

import (
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func labMN() *MN {
	c := DefaultMN()
	c.MobileNode.HomeAddress = netip.MustParseAddr("2001:db8:aaaa::100")
	c.MobileNode.HomeAgent = netip.MustParseAddr("2001:db8:aaaa::1")
	c.MobileNode.HomePrefix = netip.MustParsePrefix("2001:db8:aaaa::/64")
	return c
}

const testKeyHex = "00112233445566778899aabbccddeeff"

func TestParseMNValid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want func(c *MN)
	}{
		{"minimal", withHead(mnHead), func(c *MN) {}},
		{"design example", lines(
			`[mobile_node]`,
			`home_address = "2001:db8:aaaa::100"`,
			`home_agent   = "2001:db8:aaaa::1"`,
			`home_prefix  = "2001:db8:aaaa::/64"`,
			`lifetime     = 420          # seconds requested`,
			`bid_mode     = "interface"`,
			`registration = "bulk"`,
			`profile      = "draft-00"`,
			`bid_option_type = 35`,
			`[[interface]]               # first match wins`,
			`match    = "eth*"`,
			`priority = 30`,
			`[[interface]]`,
			`match    = "wwan*"`,
			`priority = 10`,
			`[[correspondent]]`,
			`address = "2001:db8:cccc::1"`,
			`route_optimization = true`,
			`[[policy]]`,
			`name     = "voice"`,
			`protocol = "udp"`,
			`dst_port = "5060-5061"`,
			`prefer   = ["eth*", "wlan*", "wwan*"]`,
			`[control]`,
			`socket = "/run/mcoad/mcoad.sock"`,
			`group  = "mcoa"`,
		), func(c *MN) {
			c.Interfaces = []Interface{
				{Match: "eth*", Priority: 30, MeteredPriority: 30},
				{Match: "wwan*", Priority: 10, MeteredPriority: 10},
			}
			c.Correspondents = []Correspondent{{Address: netip.MustParseAddr("2001:db8:cccc::1"), RouteOptimization: true}}
			c.Policies = []Policy{{
				Name: "voice", Protocol: ProtoUDP, DstPort: PortRange{5060, 5061},
				Prefer: []Preference{{Interface: "eth*"}, {Interface: "wlan*"}, {Interface: "wwan*"}},
			}}
		}},
		{"every key", withHead(mnHead,
			`lifetime = "1m30s"`,
			`bid_mode = "interface"`,
			`registration = "individual"`,
			`bid_option_type = 200`,
			`state_dir = "/srv/mcoad"`,
			`return_home = "keep-foreign"`,
			`deregister_on_stop = false`,
			`allow_deprecated = true`,
			`liveness = false`,
			`mnha_spi = 4096`,
			`mnha_key = "0x`+testKeyHex+`"`,
			`[[interface]]`,
			`match = "eth0"`,
			`bid = 7`,
			`priority = 255`,
			`metered_priority = 0`,
			`probe_interval = "20ms"`,
			`probe_idle = 5`,
			`probe_multiplier = 4`,
			`hold_down = "2s"`,
			`[[interface]]`,
			`match = "docker*"`,
			`exclude = true`,
			`[[correspondent]]`,
			`address = "2001:db8:cccc::1"`,
			`route_optimization = false`,
			`[[policy]]`,
			`name = "ssh"`,
			`protocol = "tcp"`,
			`src_port = 22`,
			`dst_port = "1024-65535"`,
			`src_prefix = "2001:db8:aaaa::/64"`,
			`dst_prefix = "2001:db8:cccc::/48"`,
			`prefer = ["bid:7", "wlan?"]`,
			`[[policy]]`,
			`name = "ping"`,
			`protocol = "icmpv6"`,
			`prefer = ["wwan[0-9]"]`,
			`[dataplane]`,
			`backend = "none"`,
			`mark = 0x100`,
			`mask = 0xf00`,
			`table_base = 256`,
			`bpf_dir = "/run/mcoad/bpf"`,
			`[control]`,
			`socket = "/tmp/x.sock"`,
			`group = ""`,
			`[log]`,
			`level = "debug"`,
			`format = "json"`,
			`[mobile_router]`,
			`enabled = true`,
			`prefixes = ["2001:db8:aaab::/64", "2001:db8:aaac::/64"]`,
			`mode = "implicit"`,
			`ingress = ["eth1", "wlan-ap"]`,
		), func(c *MN) {
			m := &c.MobileNode
			m.Lifetime = 88 * time.Second
			m.Registration = RegIndividual
			m.BIDOptionType = 200
			m.StateDir = "/srv/mcoad"
			m.ReturnHome = ReturnHomeKeepForeign
			m.DeregisterOnStop = false
			m.AllowDeprecated = true
			m.Liveness = false
			m.MNHASPI = 4096
			m.MNHAKey = Secret("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff")
			c.Interfaces = []Interface{
				{Match: "eth0", BID: 7, Priority: 255, MeteredPriority: 0,
					ProbeInterval: 20 * time.Millisecond, ProbeIdle: 5 * time.Second, ProbeMultiplier: 4, HoldDown: 2 * time.Second},
				{Match: "docker*", Exclude: true},
			}
			c.Correspondents = []Correspondent{{Address: netip.MustParseAddr("2001:db8:cccc::1")}}
			c.Policies = []Policy{{
				Name: "ssh", Protocol: ProtoTCP, SrcPort: PortRange{22, 22}, DstPort: PortRange{1024, 65535},
				SrcPrefix: netip.MustParsePrefix("2001:db8:aaaa::/64"), DstPrefix: netip.MustParsePrefix("2001:db8:cccc::/48"),
				Prefer: []Preference{{BID: 7}, {Interface: "wlan?"}},
			}, {
				Name: "ping", Protocol: ProtoICMPv6, Prefer: []Preference{{Interface: "wwan[0-9]"}},
			}}
			c.Dataplane = Dataplane{Backend: BackendNone, Mark: 0x100, Mask: 0xf00, TableBase: 256, BPFDir: "/run/mcoad/bpf"}
			c.Control = Control{Socket: "/tmp/x.sock"}
			c.Log.Level = slog.LevelDebug
			c.Log.Format = LogJSON
			c.MobileRouter = MobileRouter{Enabled: true, Prefixes: []netip.Prefix{
				netip.MustParsePrefix("2001:db8:aaab::/64"), netip.MustParsePrefix("2001:db8:aaac::/64")},
				Mode: NEMOImplicit, Ingress: []string{"eth1", "wlan-ap"}}
		}},
		{"lifetime rounded down to 4 s", withHead(mnHead, `lifetime = 423`), func(c *MN) {
			c.MobileNode.Lifetime = 420 * time.Second
		}},
		{"lifetime extremes", withHead(mnHead, `lifetime = 262140`), func(c *MN) {
			c.MobileNode.Lifetime = 262140 * time.Second
		}},
		{"lifetime minimum", withHead(mnHead, `lifetime = "4.9s"`), func(c *MN) {
			c.MobileNode.Lifetime = 4 * time.Second
		}},
		{"per-coa BIDs", withHead(mnHead, `bid_mode = "coa"`), func(c *MN) {
			c.MobileNode.BIDMode = BIDPerCoA
		}},
		{"dotted and quoted keys, inline tables", lines(
			`mobile_node.home_address = "2001:db8:aaaa::100"`,
			`"mobile_node".'home_agent' = "2001:db8:aaaa::1"`,
			`mobile_node.home_prefix = "2001:db8:aaaa::/64"`,
			`interface = [ { match = "eth*", priority = 3 },`,
			`              { match = "wlan*" } ]`,
			`log = { level = "error" }`,
		), func(c *MN) {
			c.Interfaces = []Interface{{Match: "eth*", Priority: 3, MeteredPriority: 3}, {Match: "wlan*"}}
			c.Log.Level = slog.LevelError
		}},
		{"empty tables keep defaults", withHead(mnHead, `[dataplane]`, `[control]`, `[log]`, `[mobile_router]`), func(c *MN) {}},
		{"mark defaults to fit a mask given alone", withHead(mnHead, `[dataplane]`, `mask = 0xffff0000`), func(c *MN) {
			c.Dataplane.Mask = 0xffff0000
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMN("test.toml", []byte(tt.src), noRead)
			if err != nil {
				t.Fatalf("error:\n%v", err)
			}
			want := labMN()
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseMNInvalid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []wantErr
	}{
		{"bad home address", lines(
			`[mobile_node]`,
			`home_agent   = "2001:db8:aaaa::1"`,
			`home_prefix  = "2001:db8:aaaa::/64"`,
			``,
			`# comment`,
			``,
			`home_address = "2001:db8::zz"`,
		), []wantErr{{7, "mobile_node.home_address", `"2001:db8::zz" is not an IPv6 address`}}},
		{"IPv4 home address", lines(
			`[mobile_node]`,
			`home_address = "192.0.2.1"`,
			`home_agent   = "2001:db8:aaaa::1"`,
			`home_prefix  = "2001:db8:aaaa::/64"`,
		), []wantErr{{2, "mobile_node.home_address", "not an IPv6 address"}}},
		{"not unicast", lines(
			`[mobile_node]`,
			`home_address = "ff02::1"`,
			`home_agent   = "fe80::1"`,
			`home_prefix  = "2001:db8:aaaa::/64"`,
		), []wantErr{
			{2, "mobile_node.home_address", "not a global unicast"},
			{3, "mobile_node.home_agent", "not a global unicast"},
		}},
		{"zone", lines(
			`[mobile_node]`,
			`home_address = "2001:db8:aaaa::100%eth0"`,
			`home_agent   = "2001:db8:aaaa::1"`,
			`home_prefix  = "2001:db8:aaaa::/64"`,
		), []wantErr{{2, "mobile_node.home_address", "zone"}}},
		{"home address outside home prefix", lines(
			`[mobile_node]`,
			`home_address = "2001:db8:bbbb::100"`,
			`home_agent   = "2001:db8:aaaa::1"`,
			`home_prefix  = "2001:db8:aaaa::/64"`,
		), []wantErr{{2, "mobile_node.home_address", "not inside home_prefix 2001:db8:aaaa::/64"}}},
		{"home agent is home address", lines(
			`[mobile_node]`,
			`home_address = "2001:db8:aaaa::100"`,
			`home_agent   = "2001:db8:aaaa::100"`,
			`home_prefix  = "2001:db8:aaaa::/64"`,
		), []wantErr{{3, "mobile_node.home_agent", "is the home address"}}},
		{"host bits in prefix", lines(
			`[mobile_node]`,
			`home_address = "2001:db8:aaaa::100"`,
			`home_agent   = "2001:db8:aaaa::1"`,
			`home_prefix  = "2001:db8:aaaa::1/64"`,
		), []wantErr{{4, "mobile_node.home_prefix", `did you mean "2001:db8:aaaa::/64"`}}},
		{"no mobile_node at all", lines(`[log]`, `level = "info"`), []wantErr{
			// One line for all of them (a shipped file still commented).
			{0, "mobile_node", "fill in home_address, home_agent, home_prefix (see the comments in the file)"},
		}},
		{"missing key points at the table", lines(
			`[log]`,
			``,
			`[mobile_node]`,
			`home_address = "2001:db8:aaaa::100"`,
			`home_agent   = "2001:db8:aaaa::1"`,
		), []wantErr{{3, "mobile_node.home_prefix", "is required"}}},
		{"unknown key with suggestion", withHead(mnHead, `lifetme = 420`),
			[]wantErr{{5, "mobile_node.lifetme", "unknown key (did you mean lifetime?)"}}},
		{"unknown section", withHead(mnHead, ``, `[dataplan]`, `backend = "tun"`),
			[]wantErr{{6, "dataplan", "unknown section (did you mean dataplane?)"}}},
		{"unknown top-level key", lines(`foo = 1`, mnHead[0], mnHead[1], mnHead[2], mnHead[3]),
			[]wantErr{{1, "foo", "unknown key"}}},
		{"unknown key in array of tables", withHead(mnHead,
			`[[interface]]`, `match = "a"`, `[[interface]]`, `match = "b"`, `prio = 1`),
			[]wantErr{{9, "interface[1].prio", "unknown key"}}},
		{"wrong types", withHead(mnHead,
			`lifetime = true`,
			`bid_mode = 1`,
			`deregister_on_stop = "yes"`,
			`[[interface]]`,
			`match = "eth*"`,
			`priority = 2.5`,
			`[dataplane]`,
			`mark = "0x100"`),
			[]wantErr{
				{5, "mobile_node.lifetime", "must be an integer number of seconds or a duration string, not a boolean"},
				{6, "mobile_node.bid_mode", "must be a string, not an integer"},
				{7, "mobile_node.deregister_on_stop", "must be true or false, not a string"},
				{10, "interface[0].priority", "must be an integer, not a float"},
				{12, "dataplane.mark", "must be an integer, not a string"},
			}},
		{"table instead of array of tables", withHead(mnHead, `[interface]`, `match = "x"`),
			[]wantErr{{5, "interface", "must be an array of tables ([[interface]]), not a table"}}},
		{"section that is a value", lines(`log = "debug"`, mnHead[0], mnHead[1], mnHead[2], mnHead[3]),
			[]wantErr{{1, "log", "must be a table, not a string"}}},
		{"lifetime ranges", withHead(mnHead, `lifetime = 3`), []wantErr{{5, "mobile_node.lifetime", "3 is out of range 4..262140 seconds"}}},
		{"lifetime too long", withHead(mnHead, `lifetime = 262141`), []wantErr{{5, "mobile_node.lifetime", "out of range"}}},
		{"lifetime negative duration", withHead(mnHead, `lifetime = "-5s"`), []wantErr{{5, "mobile_node.lifetime", "out of range"}}},
		{"lifetime not a duration", withHead(mnHead, `lifetime = "soon"`), []wantErr{{5, "mobile_node.lifetime", "not a duration"}}},
		{"enums", withHead(mnHead,
			`bid_mode = "address"`,
			`registration = "batch"`,
			`return_home = "none"`,
			`profile = "rfc9999"`,
			`[dataplane]`,
			`backend = "xdp"`,
			`[log]`,
			`level = "verbose"`,
			`format = "logfmt"`),
			[]wantErr{
				{5, "mobile_node.bid_mode", `"address" is not one of "interface", "coa"`},
				{6, "mobile_node.registration", `"batch" is not one of "bulk", "individual"`},
				{7, "mobile_node.return_home", `is not one of "all", "keep-foreign"`},
				{8, "mobile_node.profile", `unknown wire profile "rfc9999"`},
				{10, "dataplane.backend", `"xdp" is not one of "auto", "tun", "kernel", "ebpf", "none"`},
				{12, "log.level", `"verbose" is not one of "debug", "info", "warn", "error"`},
				{13, "log.format", `"logfmt" is not one of "text", "json"`},
			}},
		{"bid option type", withHead(mnHead, `bid_option_type = 1`), []wantErr{{5, "mobile_node.bid_option_type", "collides"}}},
		{"bid option type range", withHead(mnHead, `bid_option_type = 256`), []wantErr{{5, "mobile_node.bid_option_type", "256 is out of range 1..255"}}},
		{"liveness timers", withHead(mnHead, `[[interface]]`, `match = "eth*"`, `probe_interval = "5ms"`, `probe_idle = "1s"`,
			`probe_multiplier = 0`, `hold_down = "1h"`, `[[interface]]`, `match = "wl*"`, `probe_interval = "2s"`, `probe_idle = "1s"`),
			[]wantErr{
				{7, "interface[0].probe_interval", "out of range 10ms..1m0s"},
				{9, "interface[0].probe_multiplier", "0 is out of range 1..20"},
				{10, "interface[0].hold_down", "out of range 0s..10m0s"},
				{14, "interface[1].probe_idle", "shorter than probe_interval"},
			}},
		{"state_dir relative", withHead(mnHead, `state_dir = "var/lib"`), []wantErr{{5, "mobile_node.state_dir", "not an absolute path"}}},
		{"bpf_dir relative", withHead(mnHead, `[dataplane]`, `bpf_dir = "bpf"`), []wantErr{{6, "dataplane.bpf_dir", "not an absolute path"}}},
		{"spi without key", withHead(mnHead, `mnha_spi = 300`), []wantErr{{5, "mobile_node.mnha_key", "is required with mnha_spi"}}},
		{"key without spi", withHead(mnHead, `mnha_key = "`+testKeyHex+`"`), []wantErr{{5, "mobile_node.mnha_spi", "is required with mnha_key"}}},
		{"reserved spi", withHead(mnHead, `mnha_spi = 255`, `mnha_key = "`+testKeyHex+`"`), []wantErr{{5, "mobile_node.mnha_spi", "out of range 256..4294967295"}}},
		{"short key", withHead(mnHead, `mnha_spi = 256`, `mnha_key = "00112233"`), []wantErr{{6, "mobile_node.mnha_key", "key is 4 bytes; want 16 to 64"}}},
		{"key not hex", withHead(mnHead, `mnha_spi = 256`, `mnha_key = "mnha.key"`), []wantErr{{6, "mobile_node.mnha_key", "neither a hex key nor a file path"}}},
		{"key file unreadable", withHead(mnHead, `mnha_spi = 256`, `mnha_key = "./mnha.key"`), []wantErr{{6, "mobile_node.mnha_key", "cannot read key file: no files in this test"}}},
		{"interfaces", withHead(mnHead,
			`[[interface]]`, // 5
			`priority = 1`,
			`[[interface]]`, // 7
			`match = "eth["`,
			`priority = 256`,
			`metered_priority = -1`,
			`bid = 0`,
			`[[interface]]`, // 12
			`match = "wlan*"`,
			`bid = 65536`,
			`[[interface]]`, // 15
			`match = "wwan*"`,
			`bid = 9`,
			`[[interface]]`, // 18
			`match = "usb*"`,
			`bid = 9`,
			`[[interface]]`, // 21
			`match = "wlan*"`,
			`[[interface]]`, // 23
			`match = "lo"`,
			`exclude = true`,
			`bid = 1`),
			[]wantErr{
				{5, "interface[0].match", "is required"},
				{8, "interface[1].match", `"eth[" is not a valid pattern`},
				{9, "interface[1].priority", "256 is out of range 0..255"},
				{10, "interface[1].metered_priority", "-1 is out of range 0..255"},
				{11, "interface[1].bid", "0 is out of range 1..65535"},
				{14, "interface[2].bid", "65536 is out of range 1..65535"},
				{20, "interface[4].bid", "BID 9 is already used by interface[3]"},
				{22, "interface[5].match", `"wlan*" is already matched by interface[2]`},
				{26, "interface[6].bid", "an excluded interface has no BID"},
			}},
		{"fixed bid with per-coa mode", withHead(mnHead, `bid_mode = "coa"`, `[[interface]]`, `match = "eth0"`, `bid = 3`),
			[]wantErr{{8, "interface[0].bid", `a fixed BID needs bid_mode = "interface"`}}},
		{"correspondents", withHead(mnHead,
			`[[correspondent]]`, // 5
			`route_optimization = true`,
			`[[correspondent]]`, // 7
			`address = "fe80::1"`,
			`[[correspondent]]`, // 9
			`address = "2001:db8:cccc::1"`,
			`[[correspondent]]`, // 11
			`address = "2001:db8:cccc:0::1"`,
			`[[correspondent]]`, // 13
			`address = "2001:db8:aaaa::100"`),
			[]wantErr{
				{5, "correspondent[0].address", "is required"},
				{8, "correspondent[1].address", "not a global unicast"},
				{12, "correspondent[3].address", "2001:db8:cccc::1 is already listed at correspondent[2]"},
				{14, "correspondent[4].address", "is the home address"},
			}},
		{"policies", withHead(mnHead,
			`[[policy]]`, // 5
			`protocol = "sctp"`,
			`prefer = []`,
			`[[policy]]`, // 8
			`name = "a"`,
			`dst_port = 80`,
			`prefer = ["bid:70000", "bid:x", "eth[", "wlan*"]`,
			`[[policy]]`, // 12
			`name = "a"`,
			`protocol = "tcp"`,
			`src_port = "0"`,
			`dst_port = "9-1"`,
			`[[policy]]`, // 17
			`name = ""`,
			`protocol = "udp"`,
			`src_port = "a-b"`,
			`dst_port = 70000`,
			`dst_prefix = "192.0.2.0/24"`,
			`prefer = "eth*"`),
			[]wantErr{
				{5, "policy[0].name", "is required"},
				{6, "policy[0].protocol", `"sctp" is not one of "tcp", "udp", "icmpv6", "any"`},
				{7, "policy[0].prefer", "is empty"},
				{10, "policy[1].dst_port", `ports need protocol = "tcp" or "udp"`},
				{11, "policy[1].prefer[0]", `"bid:70000": a BID is 1..65535`},
				{11, "policy[1].prefer[1]", `"bid:x": a BID is 1..65535`},
				{11, "policy[1].prefer[2]", `"eth[" is not a valid pattern`},
				{12, "policy[2].prefer", "is required"},
				{13, "policy[2].name", `"a" is already the name of policy[1]`},
				{15, "policy[2].src_port", `"0" is not a port or port range`},
				{16, "policy[2].dst_port", `"9-1": the low port is above the high port`},
				{18, "policy[3].name", "is empty"},
				{20, "policy[3].src_port", `"a-b" is not a port`},
				{21, "policy[3].dst_port", `70000 is not a port`},
				{22, "policy[3].dst_prefix", `"192.0.2.0/24" is not an IPv6 prefix`},
				{23, "policy[3].prefer", "must be an array of strings, not a string"},
			}},
		{"multi-line prefer points at the element", withHead(mnHead,
			`[[policy]]`, // 5
			`name = """`,
			`two`,
			`lines"""`,
			`prefer = [`,
			`  "eth*", # ok`,
			`  # a comment, "with a string"`,
			`  "bid:0",`,
			`  [1, 2],`,
			`]`,
			`protocol = "tcpp"`),
			[]wantErr{
				{12, "policy[0].prefer[1]", `"bid:0": a BID is 1..65535`},
				{13, "policy[0].prefer[2]", "must be a string, not an array"},
				{15, "policy[0].protocol", `"tcpp" is not one of`},
			}},
		{"dataplane", withHead(mnHead,
			`[dataplane]`,
			`mark = 0x1000`,
			`mask = 0xf00`,
			`table_base = 255`),
			[]wantErr{
				{6, "dataplane.mark", "mark 0x1000 has bits outside mask 0xf00"},
				{8, "dataplane.table_base", "255 is out of range 256..4294901760"},
			}},
		{"mask alone must cover the default mark", withHead(mnHead, `[dataplane]`, `mask = 0xff`),
			[]wantErr{{6, "dataplane.mask", "has bits outside mask"}}},
		{"zero mask", withHead(mnHead, `[dataplane]`, `mask = 0`),
			[]wantErr{{6, "dataplane.mask", "0 is out of range 1..4294967295"}}},
		{"control", withHead(mnHead, `[control]`, `socket = "mcoad.sock"`, `group = "a:b"`),
			[]wantErr{
				{6, "control.socket", "not an absolute path"},
				{7, "control.group", "not a valid group name"},
			}},
		{"mobile router", withHead(mnHead, `[mobile_router]`, `enabled = true`, `prefixes = ["2001:db8:aaaa:0:8000::/65", "2001:db8::/128", "x"]`),
			[]wantErr{
				{7, "mobile_router.prefixes[0]", "overlaps home_prefix 2001:db8:aaaa::/64"},
				{7, "mobile_router.prefixes[2]", `"x" is not an IPv6 prefix`},
			}},
		{"mobile router without prefixes", withHead(mnHead, `[mobile_router]`, `enabled = true`),
			[]wantErr{{5, "mobile_router.prefixes", "needs at least one"}}},
		{"mobile router overlapping prefixes, mode, ingress", withHead(mnHead, `[mobile_router]`, `enabled = true`,
			`prefixes = ["2001:db8:aaab::/48", "2001:db8:aaab:1::/64"]`,
			`mode = "auto"`,
			`ingress = ["eth1", "bad/name", "eth1", 3]`),
			[]wantErr{
				{7, "mobile_router.prefixes[1]", "overlaps 2001:db8:aaab::/48 listed before it"},
				{8, "mobile_router.mode", `"auto" is not one of "explicit", "implicit"`},
				{9, "mobile_router.ingress[3]", "must be a string"},
				{9, "mobile_router.ingress[1]", `"bad/name" is not a valid interface name`},
				{9, "mobile_router.ingress[2]", `"eth1" is listed twice`},
			}},
		{"quoted key", lines(
			`[mobile_node]`,
			`"home_address" = "2001:db8:aaaa::100"`,
			`'home_agent' = "2001:db8:aaaa::x"`,
			`home_prefix  = "2001:db8:aaaa::/64"`,
			`"odd key" = 1`),
			[]wantErr{
				{3, "mobile_node.home_agent", "not an IPv6 address"},
				{5, `mobile_node."odd key"`, "unknown key"},
			}},
		{"errors from everywhere at once, in line order", lines(
			`[log]`,
			`level = "loud"`,
			`[[interface]]`,
			`match = "["`,
			`[mobile_node]`,
			`home_address = "x"`,
			`home_agent = "2001:db8:aaaa::1"`,
			`home_prefix = "2001:db8:aaaa::/64"`,
			`lifetime = 0`,
			`nonsense = true`,
			`[control]`,
			`socket = 5`),
			[]wantErr{
				{2, "log.level", "not one of"},
				{4, "interface[0].match", "not a valid pattern"},
				{6, "mobile_node.home_address", `"x" is not an IPv6 address`},
				{9, "mobile_node.lifetime", "out of range"},
				{10, "mobile_node.nonsense", "unknown key"},
				{12, "control.socket", "must be a string, not an integer"},
			}},
		{"syntax error", withHead(mnHead, `lifetime = 420`, `bid_mode = "interface`),
			[]wantErr{{6, "mobile_node.bid_mode", "strings cannot contain newlines"}}},
		{"duplicate key", withHead(mnHead, `home_agent = "2001:db8:aaaa::2"`),
			[]wantErr{{5, "mobile_node.home_agent", "already been defined"}}},
		{"CRLF line ends", strings.ReplaceAll(withHead(mnHead, `lifetime = 1`), "\n", "\r\n"),
			[]wantErr{{5, "mobile_node.lifetime", "out of range"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseMN("/etc/mcoad/mcoad.toml", []byte(tt.src), noRead)
			checkRejected(t, "/etc/mcoad/mcoad.toml", c, err, tt.want)
		})
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := ParseMN("/etc/mcoad/mcoad.toml", []byte(lines(
		`[mobile_node]`,
		`home_agent   = "2001:db8:aaaa::1"`,
		`home_prefix  = "2001:db8:aaaa::/64"`,
		``, ``, ``,
		`home_address = "2001:db8::zz"`,
		`[control]`,
		`socket = "/run/x"`,
		`group = "a b"`,
	)))
	want := `/etc/mcoad/mcoad.toml:7: mobile_node.home_address: "2001:db8::zz" is not an IPv6 address` + "\n" +
		`/etc/mcoad/mcoad.toml:10: control.group: "a b" is not a valid group name`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	_, err = ParseMN("a.toml", []byte("[log]\n"))
	if err == nil || err.Error() != "a.toml: mobile_node: fill in home_address, home_agent, home_prefix (see the comments in the file)" {
		t.Errorf("missing key without a line: %v", err)
	}
}
