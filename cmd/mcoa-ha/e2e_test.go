package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/proto"
)

var (
	haAddr = netip.MustParseAddr("2001:db8:aaaa::1")
	hoa    = netip.MustParseAddr("2001:db8:aaaa::100")
	coas   = []netip.Addr{
		netip.MustParseAddr("2001:db8:1::10"),
		netip.MustParseAddr("2001:db8:1::20"),
		netip.MustParseAddr("2001:db8:1::30"),
	}
)

// haEnv is a running mcoa-ha in a namespace "ha" with its home link home0
// (peer in namespace "home") and an uplink to namespace "mn", where the test
// plays the mobile node with pkg/proto and pkg/mhsock.
type haEnv struct {
	t        *testing.T
	mn, ha   *nstest.NS
	home     *nstest.NS
	conn     *mhsock.Conn
	client   *control.Client
	seq      uint16
	log      string
	received mhsock.Received
	lastBU   time.Time
	proc     *exec.Cmd
	procDone chan struct{}
	bin      string
	cfgPath  string
	cfgText  string
	stateDir string
}

// startProc starts mcoa-ha (appending to its log) and waits until its
// control socket answers.
func (e *haEnv) startProc() {
	t := e.t
	t.Helper()
	logf, err := os.OpenFile(e.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := e.ha.Command(e.bin, "-config", e.cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	e.proc, e.procDone = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := e.client.Status(context.Background()); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("mcoa-ha did not start: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stopProc stops mcoa-ha with SIGINT (SIGKILL after 5 s).
func (e *haEnv) stopProc() {
	if e.proc == nil {
		return
	}
	e.proc.Process.Signal(os.Interrupt)
	select {
	case <-e.procDone:
	case <-time.After(5 * time.Second):
		e.proc.Process.Kill()
		<-e.procDone
	}
	e.proc = nil
}

func buildHA(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mcoa-ha")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build mcoa-ha: %v\n%s", err, out)
	}
	return bin
}

func startHA(t *testing.T, bulk bool) *haEnv { return startHAOn(t, bulk, "auto") }

// startHAOn is startHA with [dataplane] backend.
func startHAOn(t *testing.T, bulk bool, backend string) *haEnv {
	nstest.Require(t, "nft")
	bin := buildHA(t)
	p := nstest.Prefix()
	e := &haEnv{t: t, mn: nstest.New(t, p+"mn"), ha: nstest.New(t, p+"ha"), home: nstest.New(t, p+"home"), seq: 100}
	nstest.Veth(t, e.mn, "eth0", e.ha, "ext0")
	nstest.Veth(t, e.ha, "home0", e.home, "eth0")
	for _, c := range coas {
		e.mn.Exec(t, "ip", "addr", "add", c.String()+"/64", "dev", "eth0", "nodad")
	}
	e.mn.Exec(t, "ip", "route", "add", "2001:db8:aaaa::/64", "via", "2001:db8:1::1")
	e.ha.Exec(t, "ip", "addr", "add", "2001:db8:1::1/64", "dev", "ext0", "nodad")
	e.ha.Exec(t, "ip", "addr", "add", haAddr.String()+"/64", "dev", "home0", "nodad")
	e.ha.Exec(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	e.home.Exec(t, "ip", "addr", "add", "2001:db8:aaaa::2/64", "dev", "eth0", "nodad")

	dir := t.TempDir()
	sock := filepath.Join(dir, "ha.sock")
	cfg := fmt.Sprintf(`[home_agent]
address = "%s"
interface = "home0"
home_prefix = "2001:db8:aaaa::/64"
serve = ["2001:db8:aaaa::/64"]
bulk_registration = %v
max_lifetime = 420
state_dir = %q
allow_unauthenticated = true

[control]
socket = %q

[log]
level = "debug"

[dataplane]
backend = %q
`, haAddr, bulk, filepath.Join(dir, "state"), sock, backend)
	cfgPath := filepath.Join(dir, "mcoa-ha.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e.log = filepath.Join(dir, "mcoa-ha.log")
	e.bin, e.cfgPath, e.cfgText = bin, cfgPath, cfg
	e.stateDir = filepath.Join(dir, "state")
	e.client = control.NewClient(sock)
	t.Cleanup(func() {
		e.stopProc()
		if t.Failed() {
			b, _ := os.ReadFile(e.log)
			t.Logf("mcoa-ha log:\n%s", b)
		}
	})
	e.startProc()
	if err := e.mn.Do(func() error {
		var err error
		e.conn, err = mhsock.Listen(&mhsock.Config{NFTable: "mcoat_mn"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.conn.Close() })
	return e
}

// bu sends a BU from src with the Home Address option and returns the BA.
func (e *haEnv) bu(src netip.Addr, lifetime uint16, bids []proto.BID, mutate func(mh []byte)) *proto.Packet {
	e.t.Helper()
	e.seq++
	return e.buSeq(src, e.seq, lifetime, bids, mutate)
}

func (e *haEnv) buSeq(src netip.Addr, seq, lifetime uint16, bids []proto.BID, mutate func(mh []byte)) *proto.Packet {
	e.t.Helper()
	// The home agent answers at most 3 BUs a second per home address
	// (RFC 6275's MAX_UPDATE_RATE, which a mobile node keeps too).
	if wait := time.Until(e.lastBU.Add(time.Second / 3)); wait > 0 {
		time.Sleep(wait)
	}
	e.lastBU = time.Now()
	p := &proto.Packet{Src: src, Dst: haAddr, HomeAddress: hoa}
	p.MH.Type = proto.TypeBU
	p.MH.PayloadProto = proto.ProtoNone
	p.MH.Sequence = seq
	p.MH.Flags = proto.FlagA | proto.FlagH
	p.MH.Lifetime = lifetime
	p.MH.Options.BIDs = bids
	if mutate == nil {
		if err := e.conn.Send(p, nil); err != nil {
			e.t.Fatalf("send BU: %v", err)
		}
	} else {
		b, err := proto.AppendPacket(nil, p, nil, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		mh := b[proto.IPv6HeaderLen+proto.HomeAddressOptLen:]
		mutate(mh)
		proto.SetChecksum(mh, hoa, haAddr)
		if err := e.conn.SendRaw(b, ifindex(e.t, e.mn, "eth0")); err != nil {
			e.t.Fatalf("send raw BU: %v", err)
		}
	}
	return e.recvBA(seq)
}

func (e *haEnv) recvBA(seq uint16) *proto.Packet {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for {
		if err := e.conn.Recv(ctx, &e.received); err != nil {
			e.t.Fatalf("no BA for sequence %d: %v", seq, err)
		}
		// A 135 carries the last accepted sequence number instead.
		if p := &e.received.Packet; p.MH.Type == proto.TypeBA && (p.MH.Sequence == seq || p.MH.Status == proto.StatusSequenceOutOfWindow) {
			return p
		}
	}
}

// expectNoBA asserts that nothing answers within d.
func (e *haEnv) expectNoBA(d time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := e.conn.Recv(ctx, &e.received); err == nil {
		e.t.Fatalf("unexpected answer: %v seq %d status %d", e.received.Packet.MH.Type, e.received.Packet.MH.Sequence, e.received.Packet.MH.Status)
	}
}

func ifindex(t *testing.T, ns *nstest.NS, name string) int {
	out := ns.Exec(t, "cat", "/sys/class/net/"+name+"/ifindex")
	var i int
	fmt.Sscan(out, &i)
	return i
}

func (e *haEnv) cache() string {
	e.t.Helper()
	es, err := e.client.Cache(context.Background())
	if err != nil {
		e.t.Fatalf("GET /v1/cache: %v", err)
	}
	var parts []string
	for _, c := range es {
		if c.HoA != hoa || c.Lifetime == 0 || c.ExpiresIn <= 0 || !c.HomeRegistration {
			e.t.Errorf("odd cache entry %+v", c)
		}
		parts = append(parts, fmt.Sprintf("%d:%s:p%d", c.BID, c.CoA, c.Priority))
	}
	return strings.Join(parts, " ")
}

func (e *haEnv) proxied() bool {
	out := e.ha.Exec(e.t, "ip", "-6", "neigh", "show", "proxy", "dev", "home0")
	return strings.Contains(out, hoa.String())
}

func checkBA(t *testing.T, ba *proto.Packet, dst netip.Addr, status proto.Status, bidStatus map[uint16]uint8) {
	t.Helper()
	if ba.Src != haAddr || ba.Dst != dst || ba.RoutingHome != hoa {
		t.Errorf("BA addresses: src %v dst %v rh2 %v; want %v %v %v", ba.Src, ba.Dst, ba.RoutingHome, haAddr, dst, hoa)
	}
	if ba.MH.Status != status {
		t.Errorf("BA status %d (%v), want %d (%v)", ba.MH.Status, ba.MH.Status, status, status)
	}
	got := map[uint16]uint8{}
	for _, b := range ba.MH.Options.BIDs {
		got[b.ID] = b.PrioStatus
	}
	if fmt.Sprint(got) != fmt.Sprint(bidStatus) {
		t.Errorf("BA BID statuses %v, want %v", got, bidStatus)
	}
}

func TestHomeAgentEndToEnd(t *testing.T) {
	e := startHA(t, true)
	// The test plays a mobile node without a key: mcoa-ha says once, at
	// start, that it accepts that.
	if b, _ := os.ReadFile(e.log); strings.Count(string(b), "authentication is off") != 1 {
		t.Errorf("want one warning about allow_unauthenticated in the log:\n%s", b)
	}

	// Figure 3: three CoAs registered at once in one bulk BU.
	ba := e.bu(coas[0], 105, []proto.BID{
		{ID: 1, PrioStatus: 30, C: true, CoA: coas[0]},
		{ID: 2, PrioStatus: 20, C: true, CoA: coas[1]},
		{ID: 3, PrioStatus: 10, C: true, CoA: coas[2]},
	}, nil)
	checkBA(t, ba, coas[0], proto.StatusAccepted, map[uint16]uint8{1: 0, 2: 0, 3: 0})
	if ba.MH.Lifetime != 105 {
		t.Errorf("granted lifetime %d units, want 105", ba.MH.Lifetime)
	}
	want := fmt.Sprintf("1:%s:p30 2:%s:p20 3:%s:p10", coas[0], coas[1], coas[2])
	if got := e.cache(); got != want {
		t.Fatalf("cache after bulk BU: %s, want %s", got, want)
	}
	if !e.proxied() {
		t.Error("home address not proxied while it has bindings")
	}

	// Individual registration updates BID 2 (new priority), sent from its CoA.
	ba = e.bu(coas[1], 105, []proto.BID{{ID: 2, PrioStatus: 50}}, nil)
	checkBA(t, ba, coas[1], proto.StatusAccepted, map[uint16]uint8{2: 0})
	want = fmt.Sprintf("1:%s:p30 2:%s:p50 3:%s:p10", coas[0], coas[1], coas[2])
	if got := e.cache(); got != want {
		t.Fatalf("cache after individual BU: %s, want %s", got, want)
	}

	// C flag without a CoA: sub-option status 128, BA 145, cache unchanged.
	ba = e.bu(coas[0], 105, []proto.BID{{ID: 4, PrioStatus: 5}}, func(mh []byte) {
		i := bidOption(t, mh)
		mh[i+5] |= 0x80
	})
	checkBA(t, ba, coas[0], proto.StatusDraftBulkRegFail, map[uint16]uint8{4: 128})
	if got := e.cache(); got != want {
		t.Fatalf("cache changed by an incompliant BU: %s", got)
	}

	// A BID sub-option of Length 6, neither 4 nor 20 (it takes in the
	// PadN's header; Pad1s follow): refused the same way, not dropped.
	ba = e.bu(coas[0], 105, []proto.BID{{ID: 4, PrioStatus: 5}}, func(mh []byte) {
		i := bidOption(t, mh)
		if mh[i+1] != 4 || mh[i+6] != byte(proto.OptPadN) || mh[i+7] != 4 || len(mh) != i+12 {
			t.Fatalf("unexpected layout: %x", mh)
		}
		mh[i+1] = 6
		clear(mh[i+6:])
	})
	checkBA(t, ba, coas[0], proto.StatusDraftBulkRegFail, map[uint16]uint8{4: 128})
	if got := e.cache(); got != want {
		t.Fatalf("cache changed by a BU with a bad BID Length: %s", got)
	}

	// De-registration of BID 3 alone.
	ba = e.bu(coas[2], 0, []proto.BID{{ID: 3}}, nil)
	checkBA(t, ba, coas[2], proto.StatusAccepted, map[uint16]uint8{3: 0})
	want = fmt.Sprintf("1:%s:p30 2:%s:p50", coas[0], coas[1])
	if got := e.cache(); got != want {
		t.Fatalf("cache after de-registering BID 3: %s, want %s", got, want)
	}

	// De-registration of an unknown BID: 133.
	ba = e.bu(coas[0], 0, []proto.BID{{ID: 9}}, nil)
	checkBA(t, ba, coas[0], proto.StatusNotHomeAgentForMN, map[uint16]uint8{9: 133})

	// An old sequence number: 135 carrying the last accepted one.
	ba = e.buSeq(coas[0], e.seq-10, 105, []proto.BID{{ID: 1, PrioStatus: 30}}, nil)
	if ba.MH.Status != proto.StatusSequenceOutOfWindow || ba.MH.Sequence != e.seq-1 {
		t.Errorf("old sequence: status %d sequence %d, want 135 with the last accepted, %d", ba.MH.Status, ba.MH.Sequence, e.seq-1)
	}

	// A bad checksum is dropped silently and changes nothing.
	e.seq++
	p := &proto.Packet{Src: coas[0], Dst: haAddr, HomeAddress: hoa}
	p.MH = proto.Message{Type: proto.TypeBU, PayloadProto: proto.ProtoNone, Sequence: e.seq, Flags: proto.FlagA | proto.FlagH}
	b, err := proto.AppendPacket(nil, p, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := e.conn.SendRaw(b, ifindex(t, e.mn, "eth0")); err != nil {
		t.Fatal(err)
	}
	e.expectNoBA(300 * time.Millisecond)
	if got := e.cache(); got != want {
		t.Fatalf("cache changed by a corrupt BU: %s", got)
	}

	// A BU without BID replaces every binding with one (draft 6.2), and
	// with lifetime 0 deletes them all: proxying stops.
	ba = e.bu(coas[1], 0, nil, nil)
	if ba.MH.Status != proto.StatusAccepted || len(ba.MH.Options.BIDs) != 0 {
		t.Errorf("all de-registration: status %d, %d BID options", ba.MH.Status, len(ba.MH.Options.BIDs))
	}
	if got := e.cache(); got != "" {
		t.Fatalf("cache after de-registering all: %s", got)
	}
	deadline := time.Now().Add(2 * time.Second)
	for e.proxied() {
		if time.Now().After(deadline) {
			t.Fatal("home address still proxied after its last binding went")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHomeAgentBulkNotSupported(t *testing.T) {
	e := startHA(t, false)
	ba := e.bu(coas[0], 105, []proto.BID{
		{ID: 1, PrioStatus: 30, C: true, CoA: coas[0]},
		{ID: 2, PrioStatus: 20, C: true, CoA: coas[1]},
	}, nil)
	if ba.MH.Status != proto.StatusDraftBulkRegNotSupported {
		t.Fatalf("bulk BU to an HA without bulk registration: status %d, want 146", ba.MH.Status)
	}
	if got := e.cache(); got != "" {
		t.Fatalf("cache after a refused bulk BU: %s", got)
	}
	// Individual registration still works.
	ba = e.bu(coas[0], 105, []proto.BID{{ID: 1, PrioStatus: 30}}, nil)
	checkBA(t, ba, coas[0], proto.StatusAccepted, map[uint16]uint8{1: 0})
	if got, want := e.cache(), fmt.Sprintf("1:%s:p30", coas[0]); got != want {
		t.Fatalf("cache: %s, want %s", got, want)
	}
}

// bidOption finds the BID sub-option in a marshalled MH.
func bidOption(t *testing.T, mh []byte) int {
	hl := (int(mh[1]) + 1) * 8
	i := 12 // BU: 6 octets of MH header, 6 of message data
	for i < hl {
		if mh[i] == 0 {
			i++
			continue
		}
		if proto.OptionType(mh[i]) == proto.OptBIDDefault {
			return i
		}
		i += 2 + int(mh[i+1])
	}
	t.Fatal("no BID sub-option in the BU")
	return 0
}

// SIGHUP reloads: switching bulk registration off turns the next bulk BU
// into 146 while the bindings stay; a bad file changes nothing.
func TestHomeAgentReload(t *testing.T) {
	e := startHA(t, true)
	bulkBU := func() *proto.Packet {
		return e.bu(coas[0], 105, []proto.BID{
			{ID: 1, PrioStatus: 30, C: true, CoA: coas[0]},
			{ID: 2, PrioStatus: 20, C: true, CoA: coas[1]},
		}, nil)
	}
	if ba := bulkBU(); ba.MH.Status != proto.StatusAccepted {
		t.Fatalf("bulk BU: status %d", ba.MH.Status)
	}
	rewrite := func(text string) {
		if err := os.WriteFile(e.cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.proc.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(strings.Replace(e.cfgText, "bulk_registration = true", "bulk_registration = maybe", 1))
	time.Sleep(300 * time.Millisecond)
	if ba := bulkBU(); ba.MH.Status != proto.StatusAccepted {
		t.Fatalf("a bad file was applied: bulk BU status %d", ba.MH.Status)
	}
	rewrite(strings.Replace(e.cfgText, "bulk_registration = true", "bulk_registration = false", 1))
	deadline := time.Now().Add(5 * time.Second)
	for {
		ba := bulkBU()
		if ba.MH.Status == proto.StatusDraftBulkRegNotSupported {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bulk BU after the reload: status %d, want 146", ba.MH.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got, want := e.cache(), fmt.Sprintf("1:%s:p30 2:%s:p20", coas[0], coas[1]); got != want {
		t.Fatalf("cache after the reload: %s, want %s", got, want)
	}
}

// TestHomeAgentKilled: mcoa-ha killed with SIGKILL and started again has
// its bindings back before it answers on its control socket: the cache,
// the proxy neighbour entry and the home address's route into the data
// plane; the mobile node's next BU is a refresh and a replayed one gets
// 135. A corrupt state file is set aside and the next start is empty; a
// stop leaves no device or route behind. Both data planes, tun and ebpf.
func TestHomeAgentKilled(t *testing.T) {
	for _, b := range []string{"tun", "ebpf"} {
		t.Run("dataplane="+b, func(t *testing.T) { testHomeAgentKilled(t, b) })
	}
}

func testHomeAgentKilled(t *testing.T, backend string) {
	e := startHAOn(t, true, backend)
	ba := e.bu(coas[0], 105, []proto.BID{
		{ID: 1, PrioStatus: 30, C: true, CoA: coas[0]},
		{ID: 2, PrioStatus: 20, C: true, CoA: coas[1]},
		{ID: 3, PrioStatus: 10, C: true, CoA: coas[2]},
	}, nil)
	checkBA(t, ba, coas[0], proto.StatusAccepted, map[uint16]uint8{1: 0, 2: 0, 3: 0})
	want := fmt.Sprintf("1:%s:p30 2:%s:p20 3:%s:p10", coas[0], coas[1], coas[2])
	file := filepath.Join(e.stateDir, "bindings.json")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		if strings.Count(string(b), `"bid"`) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state file: %s", b)
		}
		time.Sleep(5 * time.Millisecond)
	}

	e.proc.Process.Kill()
	<-e.procDone
	e.proc = nil
	start := time.Now()
	e.startProc()
	t.Logf("killed mcoa-ha answers again %v after its start", time.Since(start).Round(time.Millisecond))
	if got := e.cache(); got != want {
		t.Fatalf("cache after the restart: %q, want %q", got, want)
	}
	if !e.proxied() {
		t.Error("home address not proxied after the restart")
	}
	if out := e.ha.Exec(t, "ip", "-6", "route", "show", hoa.String()); !strings.Contains(out, "mcoaha0") || (backend == "ebpf") != strings.Contains(out, "encap bpf") {
		t.Errorf("route to the home address after the restart (%s): %q", backend, out)
	}
	ba = e.buSeq(coas[0], e.seq, 105, []proto.BID{{ID: 1, PrioStatus: 30}}, nil)
	if ba.MH.Status != proto.StatusSequenceOutOfWindow || ba.MH.Sequence != e.seq {
		t.Errorf("replayed BU: status %d sequence %d, want 135 with %d", ba.MH.Status, ba.MH.Sequence, e.seq)
	}
	ba = e.bu(coas[0], 105, []proto.BID{{ID: 1, PrioStatus: 30}}, nil)
	checkBA(t, ba, coas[0], proto.StatusAccepted, map[uint16]uint8{1: 0})

	// A corrupt file: logged, set aside, an empty start.
	e.proc.Process.Kill()
	<-e.procDone
	e.proc = nil
	if err := os.WriteFile(file, []byte("{\"format\": "), 0o600); err != nil {
		t.Fatal(err)
	}
	e.startProc()
	if got := e.cache(); got != "" {
		t.Fatalf("cache after a corrupt state file: %q", got)
	}
	if e.proxied() {
		t.Error("the killed run's proxy entry outlives its binding")
	}
	if _, err := os.Stat(file + ".bad"); err != nil {
		t.Errorf("corrupt file not set aside: %v", err)
	}
	if b, _ := os.ReadFile(e.log); !strings.Contains(string(b), "saved bindings unreadable") {
		t.Errorf("no error logged for the corrupt file:\n%s", b)
	}

	// A stop leaves no device or route of the data plane behind.
	e.stopProc()
	if out, err := e.ha.Try("ip", "link", "show", "mcoaha0"); err == nil {
		t.Errorf("mcoaha0 outlived mcoa-ha: %s", out)
	}
	if out := e.ha.Exec(t, "ip", "-6", "route", "show"); strings.Contains(out, hoa.String()) {
		t.Errorf("routes after mcoa-ha stopped: %s", out)
	}
}
