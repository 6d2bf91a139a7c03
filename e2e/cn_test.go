package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// cnEnv is the data-plane lab with a second mcoa-ha in the cn node acting
// as a pure correspondent node.
type cnEnv struct {
	*env
	cn     *control.Client
	cnSock string
}

// startCN runs mcoa-ha in the cn node with [correspondent] enabled. Its
// [home_agent] section is the CN prefix, where no mobile node lives: it is required, and
// serves nothing here.
func (e *env) startCN() (*control.Client, string) {
	e.t.Helper()
	sock := filepath.Join(e.lab.RunDir(), "mcoa-cn.sock")
	text := fmt.Sprintf(`[home_agent]
address = %q
interface = "core0"
home_prefix = "2001:db8:cccc::/64"
serve = ["2001:db8:cccc::/64"]

[correspondent]
enabled = true

[dataplane]
backend = "none"

[control]
socket = %q
group = ""

[log]
level = "debug"
`, lab.CNAddr, sock)
	path := filepath.Join(e.lab.Dir, "mcoa-cn.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		e.t.Fatal(err)
	}
	p, err := e.lab.Start(lab.CN, bins.ha, "-config", path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { p.Stop() })
	c := control.NewClient(sock)
	e.waitFor("correspondent mcoa-ha answers", 10*time.Second, func() error {
		select {
		case <-p.Done():
			e.t.Fatalf("mcoa-ha in cn exited: %v\n%s", p.Err(), p.Tail(4000))
		default:
		}
		ctx, cancel := context.WithTimeout(e.ctx, time.Second)
		defer cancel()
		_, err := c.Status(ctx)
		return err
	})
	return c, sock
}

func setupCN(t *testing.T) *cnEnv {
	t.Helper()
	e := setup(t, opts{noMN: true, ha: lab.HAConfig{Backend: "tun"}})
	ce := &cnEnv{env: e}
	ce.cn, ce.cnSock = e.startCN()
	e.mnCfg.Backend = "tun"
	e.mnCfg.Extra = fmt.Sprintf("\n[[correspondent]]\naddress = %q\n", lab.CNAddr)
	e.startMN()
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })
	return ce
}

// cnCache returns the correspondent's bindings (home_registration false)
// by interface name, and fails on anything it does not expect.
func (ce *cnEnv) cnCache() (map[string]control.CacheEntry, error) {
	ctx, cancel := context.WithTimeout(ce.ctx, 5*time.Second)
	defer cancel()
	c, err := ce.cn.Cache(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]control.CacheEntry{}
	for _, x := range c {
		if x.HomeRegistration || x.HoA != lab.HoA {
			return nil, fmt.Errorf("unexpected CN cache entry %+v", x)
		}
		n := ce.ifaceOf(x.CoA)
		if n == "" || ce.bids[n] != x.BID {
			return nil, fmt.Errorf("CN cache entry %+v: CoA and BID do not match an interface (%v)", x, ce.bids)
		}
		out[n] = x
	}
	return out, nil
}

func (ce *cnEnv) cnCacheIs(want ...string) error {
	got, err := ce.cnCache()
	if err != nil {
		return err
	}
	if len(got) != len(want) {
		return fmt.Errorf("CN cache %v, want %v", got, want)
	}
	for _, n := range want {
		if _, ok := got[n]; !ok {
			return fmt.Errorf("CN cache %v, want %v", got, want)
		}
	}
	return nil
}

// mnCNBindings returns mcoad's role "cn" bindings that are registered.
func (ce *cnEnv) mnCNBindings() (map[uint16]control.Binding, error) {
	ctx, cancel := context.WithTimeout(ce.ctx, 5*time.Second)
	defer cancel()
	bs, err := ce.mn.Client.Bindings(ctx)
	if err != nil {
		return nil, err
	}
	out := map[uint16]control.Binding{}
	for _, b := range bs {
		if b.Role != "cn" {
			continue
		}
		if b.Peer != lab.CNAddr {
			return nil, fmt.Errorf("cn binding with peer %v", b.Peer)
		}
		if b.State == "registered" {
			out[b.BID] = b
		}
	}
	return out, nil
}

func TestCorrespondentRegistration(t *testing.T) {
	ce := setupCN(t)
	e := ce.env
	e.waitFor("three bindings in the CN's cache", registerTimeout, func() error { return ce.cnCacheIs(ifaces...) })
	e.waitFor("three cn bindings on the MN", registerTimeout, func() error {
		bs, err := ce.mnCNBindings()
		if err != nil {
			return err
		}
		for _, n := range ifaces {
			if b, ok := bs[e.bids[n]]; !ok || b.CoA != e.coas[n] {
				return fmt.Errorf("cn bindings %+v, want BID %d with %v", bs, e.bids[n], e.coas[n])
			}
		}
		return nil
	})
	// The HoTI went from the home address through a tunnel to the HA and
	// the HoT came back through one: the only traffic of the home address.
	var rx, tx float64
	for k, v := range e.metrics(e.ha) {
		switch {
		case strings.HasPrefix(k, "mcoa_ha_tunnel_rx_packets_total"):
			rx += v
		case strings.HasPrefix(k, "mcoa_ha_tunnel_tx_packets_total"):
			tx += v
		}
	}
	if rx < 1 || tx < 1 {
		t.Errorf("HA tunnel packets rx %v tx %v: the home test did not go through the tunnel", rx, tx)
	}
	// Each CoA had its own care-of test: the MN's log names each CoTI.
	log := e.mn.LogSince(0)
	for _, n := range ifaces {
		if !strings.Contains(log, "type=CoTI src="+e.coas[n].String()) {
			t.Errorf("no CoTI from %s in the MN's log", e.coas[n])
		}
	}
	if c := strings.Count(log, "type=HoTI src="+lab.HoA.String()); c != 1 {
		t.Errorf("%d HoTIs from the home address, want 1", c)
	}

	// A BU with a forged authenticator changes nothing: from wlan0's CoA,
	// claiming eth0's BID.
	before, err := ce.cnCache()
	if err != nil {
		t.Fatal(err)
	}
	ns := &nstest.NS{Name: e.lab.NS(lab.MN)}
	var conn *mhsock.Conn
	if err := ns.Do(func() error {
		var err error
		conn, err = mhsock.Listen(&mhsock.Config{NoICMPFilter: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kbm := make([]byte, 20)
	rand.Read(kbm)
	forged := &proto.Packet{Src: e.coas["wlan0"], Dst: lab.CNAddr, HomeAddress: lab.HoA, HopLimit: 64, MH: proto.Message{
		Type: proto.TypeBU, PayloadProto: proto.ProtoNone, Sequence: before["eth0"].Sequence + 1, Flags: proto.FlagA, Lifetime: 100,
		Options: proto.Options{HasNonceIndices: true, HasAuthData: true, BIDs: []proto.BID{{ID: e.bids["eth0"]}}}}}
	if err := conn.Send(forged, proto.BADSigner{Kbm: kbm, CoA: forged.Src, Correspondent: lab.CNAddr}); err != nil {
		t.Fatalf("send forged BU: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	after, err := ce.cnCache()
	if err != nil {
		t.Fatal(err)
	}
	if after["eth0"].CoA != before["eth0"].CoA || after["eth0"].Sequence != before["eth0"].Sequence || len(after) != 3 {
		t.Fatalf("forged BU changed the CN cache: before %+v after %+v", before, after)
	}

	// Cutting eth0 removes that CN binding.
	if err := e.lab.CutLink("eth0"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("eth0's CN binding removed", registerTimeout, func() error { return ce.cnCacheIs("wlan0", "wwan0") })

	// A new CoA: time from its home registration to its CN binding.
	if err := e.lab.RestoreLink("eth0"); err != nil {
		t.Fatal(err)
	}
	var tHA, tCN time.Time
	start := time.Now()
	ctx, cancel := context.WithTimeout(e.ctx, registerTimeout)
	defer cancel()
	_, err = lab.Poll(ctx, time.Millisecond, func(context.Context) (bool, error) {
		if tHA.IsZero() {
			if c, err := e.cache(); err == nil && e.checkEntries(c, ifaces...) == nil {
				tHA = time.Now()
			}
		}
		if cc, err := ce.cnCache(); err == nil && len(cc) == 3 {
			tCN = time.Now()
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("eth0's CN binding after the link came back: %v", err)
	}
	if tHA.IsZero() {
		tHA = tCN
	}
	rtt := pingRTT(t, e)
	t.Logf("new CoA: link up -> HA binding %v, HA binding -> CN binding %v (RTT MN-CN %v; target 2 RTT + 5 ms = %v)",
		tHA.Sub(start).Round(time.Microsecond), tCN.Sub(tHA).Round(time.Microsecond), rtt, 2*rtt+5*time.Millisecond)
}

// pingRTT measures the round trip from the MN's eth0 CoA to the CN.
func pingRTT(t *testing.T, e *env) time.Duration {
	out, err := e.lab.Exec(e.ctx, lab.MN, "ping", "-c", "3", "-i", "0.2", "-I", e.coas["eth0"].String(), lab.CNAddr.String())
	if err != nil {
		t.Logf("ping: %v: %s", err, out)
		return 0
	}
	// rtt min/avg/max/mdev = a/b/c/d ms
	s := string(out)
	i := strings.Index(s, "= ")
	if i < 0 {
		return 0
	}
	f := strings.Split(s[i+2:], "/")
	if len(f) < 2 {
		return 0
	}
	d, _ := time.ParseDuration(f[1] + "ms")
	return d
}
