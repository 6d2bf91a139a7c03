package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/pkg/control"
)

// scenarioMN is mcoad in a given state, for `mcoactl status`.
type scenarioMN struct {
	fakeMN
	status     control.Status
	bindings   []control.Binding
	interfaces []control.Interface
}

func (f *scenarioMN) Status(context.Context) (control.Status, error) { return f.status, nil }
func (f *scenarioMN) Bindings(context.Context) ([]control.Binding, error) {
	return f.bindings, nil
}
func (f *scenarioMN) Interfaces(context.Context) ([]control.Interface, error) {
	return f.interfaces, nil
}

// counters builds /metrics: "name" or "name{label=value}" to a value.
func counters(kv map[string]float64) control.MetricsFunc {
	return func() []control.Metric {
		var ms []control.Metric
		for k, v := range kv {
			name, lbl, _ := strings.Cut(strings.TrimSuffix(k, "}"), "{")
			s := control.Sample{Value: v}
			if lbl != "" {
				l, val, _ := strings.Cut(lbl, "=")
				s.Labels = map[string]string{l: val}
			}
			ms = append(ms, control.Metric{Name: name, Help: "x", Type: control.Counter, Samples: []control.Sample{s}})
		}
		// One family per name: merge.
		slices.SortFunc(ms, func(a, b control.Metric) int { return strings.Compare(a.Name, b.Name) })
		var out []control.Metric
		for _, m := range ms {
			if n := len(out); n > 0 && out[n-1].Name == m.Name {
				out[n-1].Samples = append(out[n-1].Samples, m.Samples...)
				continue
			}
			out = append(out, m)
		}
		return out
	}
}

func haBinding(bid uint16, ifname string, coa netip.Addr, state string, lastStatus int) control.Binding {
	b := control.Binding{Peer: ha, Role: control.RoleHA, BID: bid, Interface: ifname, CoA: coa, Priority: 30,
		State: state, Sequence: 7, Lifetime: 420, LastStatus: lastStatus}
	if lastStatus >= 0 {
		b.LastStatusText = map[int]string{0: "accepted", 129: "ADMINISTRATIVELY PROHIBITED", 133: "NOT HOME AGENT FOR THIS MOBILE NODE"}[lastStatus]
	}
	if state == "registered" {
		b.ExpiresIn = 400
	}
	return b
}

func upIfaces() []control.Interface {
	return []control.Interface{
		{Name: "eth0", Index: 2, BID: 1, CoA: coa1, Priority: 30, State: "coa"},
		{Name: "wlan0", Index: 3, BID: 2, CoA: coa2, Priority: 20, State: "coa"},
	}
}

func baseStatus() control.Status {
	return control.Status{Daemon: control.DaemonMN, Version: "0.1", HomeAddress: hoa, HomeAgent: ha, Mode: "bulk",
		BIDMode: "interface", Profile: "draft-00", Dataplane: "tun", Auth: "mn-ha", Uptime: 60,
		Counts: control.Counts{Bindings: 2, Interfaces: 2}}
}

// TestStatusDiagnoses: each diagnosis of `mcoactl status`, golden, with
// its exit status: 1 when nothing is registered with the home agent.
func TestStatusDiagnoses(t *testing.T) {
	alive := func(b control.Binding) control.Binding {
		b.Health = control.Health{Liveness: "alive", RTTMs: 1.5}
		return b
	}
	for _, c := range []struct {
		name    string
		mod     func(*scenarioMN)
		metrics map[string]float64
		exit    int
		checks  []string
	}{
		{"healthy", func(f *scenarioMN) {
			f.bindings = []control.Binding{haBinding(1, "eth0", coa1, "registered", 0), haBinding(2, "wlan0", coa2, "registered", 0)}
		}, map[string]float64{"mcoad_tunnel_tx_packets_total{bid=1}": 300, "mcoad_tunnel_rx_packets_total{bid=1}": 280}, 0, nil},
		{"ha-silent", func(f *scenarioMN) {
			f.status.Auth = "none"
			f.bindings = []control.Binding{haBinding(1, "eth0", coa1, "pending", -1), haBinding(2, "wlan0", coa2, "pending", -1)}
		}, map[string]float64{"mcoad_retransmissions_total": 12}, 1, []string{"ha-silent", "not-registered"}},
		{"ha-ignores-bu", func(f *scenarioMN) {
			f.bindings = []control.Binding{alive(haBinding(1, "eth0", coa1, "pending", -1)), alive(haBinding(2, "wlan0", coa2, "pending", -1))}
		}, map[string]float64{"mcoad_retransmissions_total": 5}, 1, []string{"ha-ignores-bu", "not-registered"}},
		{"mh-filtered", func(f *scenarioMN) {
			f.bindings = []control.Binding{haBinding(1, "eth0", coa1, "registered", 0), alive(haBinding(2, "wlan0", coa2, "pending", -1))}
		}, map[string]float64{"mcoad_retransmissions_total": 6}, 0, []string{"mh-filtered"}},
		{"tunnel-filtered", func(f *scenarioMN) {
			f.bindings = []control.Binding{haBinding(1, "eth0", coa1, "registered", 0), haBinding(2, "wlan0", coa2, "registered", 0)}
		}, map[string]float64{
			"mcoad_tunnel_tx_packets_total{bid=1}": 250, "mcoad_tunnel_rx_packets_total{bid=1}": 0,
			"mcoad_tunnel_tx_packets_total{bid=2}": 40, "mcoad_tunnel_rx_packets_total{bid=2}": 38,
		}, 0, []string{"tunnel-filtered"}},
		{"no-ipv6", func(f *scenarioMN) {
			f.bindings = []control.Binding{haBinding(1, "eth0", coa1, "registered", 0)}
			f.interfaces = append(upIfaces()[:1], control.Interface{Name: "wlan0", Index: 3, BID: 2, Priority: 20, State: "no-address"},
				control.Interface{Name: "wwan0", Index: 4, State: "no-carrier"})
		}, nil, 0, []string{"no-ipv6"}},
		{"dataplane", func(f *scenarioMN) {
			f.status.DataplaneError = "flow policy: ip -6 rule add fwmark 0x4d010000/0xff000000 lookup 1001: operation not supported"
			f.bindings = []control.Binding{haBinding(1, "eth0", coa1, "registered", 0)}
		}, nil, 0, []string{"dataplane"}},
		{"dataplane-kernel", func(f *scenarioMN) {
			f.status.Dataplane = "kernel"
			f.status.DataplaneError = "tunnel mcoab1: creating ip6tnl: operation not supported"
			f.bindings = []control.Binding{haBinding(1, "eth0", coa1, "registered", 0)}
		}, nil, 0, []string{"dataplane"}},
		{"auth-ba", func(f *scenarioMN) {
			f.bindings = []control.Binding{haBinding(1, "eth0", coa1, "pending", -1), haBinding(2, "wlan0", coa2, "pending", -1)}
		}, map[string]float64{"mcoad_ba_ignored_total{reason=auth}": 6, "mcoad_retransmissions_total": 6}, 1, []string{"auth", "not-registered"}},
		{"auth-refused", func(f *scenarioMN) {
			f.status.Auth = "none"
			b := haBinding(1, "eth0", coa1, "failed", 129)
			b.LastError = "rejected: ADMINISTRATIVELY PROHIBITED"
			f.bindings = []control.Binding{b}
		}, nil, 1, []string{"auth", "not-registered"}},
		{"rejected", func(f *scenarioMN) {
			b := haBinding(1, "eth0", coa1, "failed", 133)
			b.LastError = "rejected: NOT HOME AGENT FOR THIS MOBILE NODE"
			f.bindings = []control.Binding{b}
		}, nil, 1, []string{"rejected", "not-registered"}},
		{"no-care-of-address", func(f *scenarioMN) {
			f.interfaces = []control.Interface{{Name: "eth0", Index: 2, State: "no-carrier"}}
		}, nil, 1, []string{"no-care-of-address"}},
		{"path-dead", func(f *scenarioMN) {
			d := haBinding(1, "eth0", coa1, "down", -1)
			d.Health = control.Health{Liveness: "dead", Loss: 1}
			d.LastError = "path dead: probing"
			f.bindings = []control.Binding{d, haBinding(2, "wlan0", coa2, "registered", 0)}
		}, nil, 0, []string{"path-dead"}},
		{"at-home", func(f *scenarioMN) {
			f.status.AtHome = true
			f.interfaces = []control.Interface{{Name: "eth0", Index: 2, State: "home", HomeLink: true}}
		}, nil, 0, nil},
		{"starting", func(f *scenarioMN) {
			f.bindings = []control.Binding{haBinding(1, "eth0", coa1, "pending", -1)}
		}, nil, 1, []string{"not-registered"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &scenarioMN{status: baseStatus(), interfaces: upIfaces()}
			c.mod(f)
			s := startServer(t, "mcoad.sock", control.Config{MN: f, Metrics: counters(c.metrics)})
			code, out, errs := mcoactl("-socket", s.sock, "status")
			if code != c.exit || errs != "" {
				t.Errorf("exit %d, stderr %q; want exit %d", code, errs, c.exit)
			}
			golden(t, "status/"+c.name+".txt", out)

			code, out, _ = mcoactl("-socket", s.sock, "status", "--json")
			var got statusJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("--json: %v\n%s", err, out)
			}
			var checks []string
			for _, d := range got.Diagnoses {
				checks = append(checks, d.Check)
				if d.Problem == "" || d.Fix == "" {
					t.Errorf("--json: diagnosis without problem or fix: %+v", d)
				}
			}
			if code != c.exit || !slices.Equal(checks, c.checks) || got.Registered != (c.exit == 0) || got.HomeAgent != ha {
				t.Errorf("--json: exit %d, checks %v, registered %v; want %d %v", code, checks, got.Registered, c.exit, c.checks)
			}
			if !strings.Contains(out, `"diagnoses": [`) {
				t.Errorf("--json: no diagnoses list:\n%s", out)
			}
		})
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics(`# HELP x y
# TYPE mcoad_ba_ignored_total counter
mcoad_ba_ignored_total{reason="auth"} 3
mcoad_ba_ignored_total{reason="wrong-source",x="a,b"} 1
mcoad_retransmissions_total 12
garbage
bad{ value
`)
	if m.get("mcoad_ba_ignored_total", "reason", "auth") != 3 || m.get("mcoad_retransmissions_total") != 12 ||
		m.get("mcoad_ba_ignored_total", "reason", "unknown-bid") != 0 || m.get("nothing") != 0 {
		t.Errorf("parsed %v", m)
	}
}
