package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy(PolicyText{
		Name: "voice", Protocol: "udp", DstPort: "5060-5061", SrcPort: "40000",
		DstPrefix: "2001:db8::/32", SrcPrefix: "2001:db8:aaaa::100/128",
		User: "alice", Cgroup: "/system.slice/voip.service", Prefer: []string{"wlan*", "bid:3", "2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Policy{
		Name: "voice", Protocol: ProtoUDP, DstPort: PortRange{5060, 5061}, SrcPort: PortRange{40000, 40000},
		DstPrefix: netip.MustParsePrefix("2001:db8::/32"), SrcPrefix: netip.MustParsePrefix("2001:db8:aaaa::100/128"),
		User: "alice", Cgroup: "/system.slice/voip.service",
		Prefer: []Preference{{Interface: "wlan*"}, {BID: 3}, {BID: 2}},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v\nwant %+v", p, want)
	}
	back, err := ParsePolicy(p.Text())
	if err != nil || !back.Equal(p) {
		t.Errorf("Text round trip: %+v %v", back, err)
	}
	if got := p.Text().Prefer; !reflect.DeepEqual(got, []string{"wlan*", "bid:3", "bid:2"}) {
		t.Errorf("prefer as text: %q", got)
	}
	any, err := ParsePolicy(PolicyText{Name: "all", Prefer: []string{"*"}})
	if err != nil || any.Protocol != ProtoAny || any.Text().Protocol != "" {
		t.Errorf("minimal policy: %+v %v", any, err)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for _, tt := range []struct {
		in   PolicyText
		want string
	}{
		{PolicyText{Prefer: []string{"x"}}, "name: is empty"},
		{PolicyText{Name: "p"}, "prefer: is empty"},
		{PolicyText{Name: "p", Protocol: "sctp", Prefer: []string{"x"}}, `protocol: "sctp"`},
		{PolicyText{Name: "p", DstPort: "80", Prefer: []string{"x"}}, "ports need protocol"},
		{PolicyText{Name: "p", Protocol: "tcp", DstPort: "90-80", Prefer: []string{"x"}}, "low port is above"},
		{PolicyText{Name: "p", Protocol: "tcp", SrcPort: "0", Prefer: []string{"x"}}, "not a port"},
		{PolicyText{Name: "p", Protocol: "tcp", DstPort: "http", Prefer: []string{"x"}}, "not a port"},
		{PolicyText{Name: "p", DstPrefix: "10.0.0.0/8", Prefer: []string{"x"}}, "not an IPv6 prefix"},
		{PolicyText{Name: "p", DstPrefix: "2001:db8::1/32", Prefer: []string{"x"}}, "bits set after"},
		{PolicyText{Name: "p", User: "a b", Prefer: []string{"x"}}, "user:"},
		{PolicyText{Name: "p", User: "4294967296", Prefer: []string{"x"}}, "user: uid"},
		{PolicyText{Name: "p", Cgroup: "system.slice", Prefer: []string{"x"}}, "cgroup:"},
		{PolicyText{Name: "p", Cgroup: "/a/../b", Prefer: []string{"x"}}, "cgroup:"},
		{PolicyText{Name: "p", Prefer: []string{"bid:0"}}, "a BID is 1..65535"},
		{PolicyText{Name: "p", Prefer: []string{"70000"}}, "a BID is 1..65535"},
		{PolicyText{Name: "p", Prefer: []string{"eth["}}, "not a valid pattern"},
	} {
		_, err := ParsePolicy(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePolicy(%+v) = %v, want an error with %q", tt.in, err, tt.want)
		}
	}
	// Every problem is reported at once.
	_, err := ParsePolicy(PolicyText{Name: "p", Protocol: "x", Cgroup: "y"})
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("%d errors reported, want 3: %v", n, err)
	}
}

func TestPolicyUserCgroupKeys(t *testing.T) {
	c, err := ParseMN("x.toml", []byte(withHead(mnHead)+`
[[policy]]
name = "p"
user = "alice"
cgroup = "/user.slice"
prefer = ["eth*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Policies[0]; p.User != "alice" || p.Cgroup != "/user.slice" {
		t.Errorf("policy %+v", p)
	}
	_, err = ParseMN("x.toml", []byte(withHead(mnHead)+`
[[policy]]
name = "p"
cgroup = "user.slice"
prefer = ["eth*"]
`))
	if err == nil || !strings.Contains(err.Error(), "policy") || !strings.Contains(err.Error(), "cgroup") {
		t.Errorf("relative cgroup: %v", err)
	}
}
