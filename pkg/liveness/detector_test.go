package liveness

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

var (
	testHA  = netip.MustParseAddr("2001:db8:aaaa::1")
	testHoA = netip.MustParseAddr("2001:db8:aaaa::100")
	t0      = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
)

type sentProbe struct {
	ifindex  int
	src, dst netip.Addr
	id, seq  uint16
	at       time.Time
}

// recorder is a Prober that keeps what it was asked to send; the
// simulation decides what comes back.
type recorder struct {
	now  func() time.Time
	sent []sentProbe
}

func (r *recorder) Probe(ifindex int, src, dst netip.Addr, id, seq uint16) error {
	r.sent = append(r.sent, sentProbe{ifindex, src, dst, id, seq, r.now()})
	return nil
}

// sim drives a detector millisecond by millisecond over a simulated network:
// each path either carries its probes and packets or drops them, with a
// round trip and a loss rate; tunnels receive packets at a rate.
type sim struct {
	t      *testing.T
	c      *detector
	now    time.Time
	pr     *recorder
	seen   int // probes of pr.sent already handled
	rng    *rand.Rand
	rtt    time.Duration
	up     map[uint16]bool    // the path carries traffic
	loss   map[uint16]float64 // each way
	rate   map[uint16]time.Duration
	homeUp bool // the home agent holds the bindings (answers through the tunnels)
	tr     map[uint16]Traffic
	due    []reply
	poll   time.Time

	homeLost int
	changes  []change
	last     map[uint16]State
}

type change struct {
	at    time.Time
	bid   uint16
	state State
}

func newSim(t *testing.T, homeCheck bool, ps ...Path) *sim {
	s := &sim{t: t, now: t0, rng: rand.New(rand.NewPCG(1, 2)), rtt: 200 * time.Microsecond,
		up: map[uint16]bool{}, loss: map[uint16]float64{}, rate: map[uint16]time.Duration{},
		homeUp: true, tr: map[uint16]Traffic{}, last: map[uint16]State{}}
	s.pr = &recorder{now: func() time.Time { return s.now }}
	s.c = newDetector(testHA, testHoA, 0x4d4d, s.pr, homeCheck)
	for _, p := range ps {
		s.up[p.BID] = true
		s.tr[p.BID] = Traffic{}
	}
	s.c.setPaths(ps, s.now)
	s.step()
	return s
}

func testPath(bid uint16, iface string, metered bool) Path {
	return Path{BID: bid, Iface: iface, Ifindex: int(bid) + 10, CoA: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(bid), 15: 0x10}), Metered: metered}
}

func (s *sim) lost(bid uint16) bool {
	return !s.up[bid] || (s.loss[bid] > 0 && s.rng.Float64() < s.loss[bid])
}

func (s *sim) step() {
	// Packets arriving through the tunnels.
	for bid, r := range s.rate {
		if r > 0 && s.up[bid] && s.now.Sub(t0)%r == 0 && !s.lost(bid) {
			t := s.tr[bid]
			t.RxPackets++
			s.tr[bid] = t
		}
	}
	// Answers due now.
	rest := s.due[:0]
	for _, r := range s.due {
		if r.at.After(s.now) {
			rest = append(rest, r)
			continue
		}
		s.c.reply(r.seq, r.at)
	}
	s.due = rest
	if !s.now.Before(s.poll) {
		s.c.traffic(s.tr, s.now)
		s.poll = s.now.Add(s.c.pollEvery(s.now))
	}
	s.c.tick(s.now)
	// What the detector sent: a probe and its answer both cross the path.
	for _, p := range s.pr.sent[s.seen:] {
		if p.ifindex == 0 {
			if s.homeUp && s.anyUp() {
				s.due = append(s.due, reply{seq: p.seq, at: s.now.Add(s.rtt)})
			}
			continue
		}
		bid := uint16(p.ifindex - 10)
		there, back := !s.lost(bid), !s.lost(bid) // each way its own draw
		if there && back {
			s.due = append(s.due, reply{seq: p.seq, at: s.now.Add(s.rtt)})
		}
	}
	s.seen = len(s.pr.sent)
	fx := s.c.take()
	if fx.homeLost {
		s.homeLost++
	}
	for _, h := range s.c.health() {
		if s.last[h.BID] != h.State {
			s.last[h.BID] = h.State
			s.changes = append(s.changes, change{s.now, h.BID, h.State})
		}
	}
}

func (s *sim) anyUp() bool {
	for _, u := range s.up {
		if u {
			return true
		}
	}
	return false
}

func (s *sim) run(d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); {
		s.now = s.now.Add(time.Millisecond)
		s.step()
	}
}

func (s *sim) state(bid uint16) State { return s.c.find(bid).state }

// probes counts the probes sent for bid (0: home checks) in [from, to).
func (s *sim) probes(bid uint16, from, to time.Time) int {
	n := 0
	for _, p := range s.pr.sent {
		if p.at.Before(from) || !p.at.Before(to) {
			continue
		}
		if (bid == 0 && p.ifindex == 0) || (bid != 0 && p.ifindex == int(bid)+10) {
			n++
		}
	}
	return n
}

// firstChange is when bid first entered st at or after from (zero: never).
func (s *sim) firstChange(bid uint16, st State, from time.Time) time.Time {
	for _, c := range s.changes {
		if c.bid == bid && c.state == st && !c.at.Before(from) {
			return c.at
		}
	}
	return time.Time{}
}

func TestNewPathProbedAtOnce(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false))
	if len(s.pr.sent) != 1 {
		t.Fatalf("probes at start: %d, want 1", len(s.pr.sent))
	}
	p := s.pr.sent[0]
	if p.src != testPath(1, "eth0", false).CoA || p.dst != testHA || p.ifindex != 11 || p.id != 0x4d4d {
		t.Errorf("probe %+v: want from the CoA, out of ifindex 11, to the HA, id 0x4d4d", p)
	}
	s.run(5 * time.Millisecond)
	if st := s.state(1); st != Alive {
		t.Fatalf("state after the answer: %s, want alive", st)
	}
	h := s.c.health()[0]
	if h.RTT != s.rtt || h.Loss != 0 || h.ProbesSent != 1 {
		t.Errorf("health %+v: want RTT %v, no loss, 1 probe", h, s.rtt)
	}
}

func TestIdlePathKeepalives(t *testing.T) {
	for _, metered := range []bool{false, true} {
		s := newSim(t, false, testPath(1, "wwan0", metered))
		start := s.now
		s.run(5 * time.Minute)
		n := s.probes(1, start, s.now)
		idle := Defaults(metered).Idle
		want := int(5 * time.Minute / idle)
		if n < want-1 || n > want+1 {
			t.Errorf("metered=%v: %d probes in 5 min, want about %d (one per %v)", metered, n, want, idle)
		}
		if st := s.state(1); st != Alive {
			t.Errorf("metered=%v: state %s, want alive", metered, st)
		}
	}
}

func TestBusyPathNeedsNoProbe(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false))
	s.rate[1] = time.Millisecond
	s.run(time.Second) // the first poll's gap settles
	from := s.now
	s.run(30 * time.Second)
	if n := s.probes(1, from, s.now); n != 0 {
		t.Errorf("%d probes on a path receiving every ms, want 0", n)
	}
}

// deadWithin fails the test unless bid became dead within d of cut.
func (s *sim) deadWithin(bid uint16, cut time.Time, d time.Duration) {
	s.t.Helper()
	dead := s.firstChange(bid, Dead, cut)
	if dead.IsZero() {
		s.t.Fatalf("BID %d never dead after the cut, want within %v; changes %v", bid, d, s.changes)
	}
	if dead.Sub(cut) > d {
		s.t.Fatalf("BID %d dead %v after the cut, want within %v", bid, dead.Sub(cut), d)
	}
}

// A path that stops forwarding while it receives a packet every ms: dead
// within silence + Multiplier probes, and only then.
func TestBlackHoleOnBusyPath(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false), testPath(2, "wlan0", false))
	s.rate[1] = time.Millisecond
	s.run(2 * time.Second)
	cut := s.now
	s.up[1] = false
	s.run(2 * time.Second)
	dead := s.firstChange(1, Dead, cut)
	if dead.IsZero() {
		t.Fatalf("never dead; changes %v", s.changes)
	}
	d := dead.Sub(cut)
	tm := Defaults(false)
	lo := tm.Interval + time.Duration(tm.Multiplier)*tm.Interval
	if d < lo || d > lo+tm.Interval {
		t.Errorf("dead %v after the cut, want %v to %v", d, lo, lo+tm.Interval)
	}
	if sus := s.firstChange(1, Suspect, cut); sus.IsZero() || !sus.Before(dead) {
		t.Errorf("suspect at %v, dead at %v: want suspect first", sus, dead)
	}
	if s.state(2) != Alive {
		t.Errorf("the other path: %s, want alive", s.state(2))
	}
	t.Logf("black hole on a busy path: dead after %v", d)
}

func TestBlackHoleOnIdlePath(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false))
	s.run(3 * time.Second)
	cut := s.now
	s.up[1] = false
	s.run(3 * time.Second)
	tm := Defaults(false)
	s.deadWithin(1, cut, tm.Idle+time.Duration(tm.Multiplier+2)*tm.Interval)
}

// Sending without anything coming back is a reason to check.
func TestSendingWithoutAnswer(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false))
	s.run(300 * time.Millisecond)
	s.up[1] = false
	cut := s.now
	for i := 0; i < 100; i++ {
		tr := s.tr[1]
		tr.TxPackets++
		s.tr[1] = tr
		s.run(10 * time.Millisecond)
	}
	s.deadWithin(1, cut, 500*time.Millisecond)
}

// 5% loss each way on idle and busy paths for 30 minutes: never dead.
func TestRandomLossNoFalseFailover(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false), testPath(2, "wlan0", false), testPath(3, "wwan0", true))
	for b := uint16(1); b <= 3; b++ {
		s.loss[b] = 0.05
	}
	s.rate[1] = 10 * time.Millisecond
	s.run(30 * time.Minute)
	for _, c := range s.changes {
		if c.state == Dead {
			t.Errorf("BID %d dead at %v with 5%% loss", c.bid, c.at.Sub(t0))
		}
	}
	for _, h := range s.c.health() {
		if h.Loss == 0 && h.ProbesSent > 100 {
			t.Errorf("BID %d: loss 0 over %d probes, want about 0.1", h.BID, h.ProbesSent)
		}
		t.Logf("BID %d: %d probes, %d lost, loss %.2f", h.BID, h.ProbesSent, h.ProbesLost, h.Loss)
	}
}

func TestRecoveryAfterHoldDown(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false))
	s.run(2 * time.Second)
	s.up[1] = false
	s.run(2 * time.Second)
	if s.state(1) != Dead {
		t.Fatalf("state %s, want dead", s.state(1))
	}
	// Still probed while dead, but sparingly.
	from := s.now
	s.run(10 * time.Second)
	n := s.probes(1, from, s.now)
	if n < 10 || n > 60 {
		t.Errorf("%d probes in 10 s while dead, want one per retry interval (about 50)", n)
	}
	back := s.now
	s.up[1] = true
	s.run(5 * time.Second)
	alive := s.firstChange(1, Alive, back)
	tm := Defaults(false)
	if alive.IsZero() || alive.Sub(back) < tm.HoldDown || alive.Sub(back) > tm.HoldDown+500*time.Millisecond {
		t.Fatalf("alive %v after the path came back, want after the %v hold-down", alive.Sub(back), tm.HoldDown)
	}
	// Flapping: dies again at once, the hold-down doubles.
	s.up[1] = false
	s.run(2 * time.Second)
	back = s.now
	s.up[1] = true
	s.run(10 * time.Second)
	alive = s.firstChange(1, Alive, back)
	if alive.IsZero() || alive.Sub(back) < 2*tm.HoldDown {
		t.Errorf("after a flap, alive %v after coming back, want at least %v", alive.Sub(back), 2*tm.HoldDown)
	}
}

// A path that answers a probe now and then while dead does not come back.
func TestNoRecoveryOnSporadicAnswers(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false))
	s.run(time.Second)
	s.up[1] = false
	s.run(2 * time.Second)
	s.up[1] = true
	s.loss[1] = 0.6
	from := s.now
	s.run(20 * time.Second)
	if a := s.firstChange(1, Alive, from); !a.IsZero() {
		t.Errorf("alive at %v on a path losing 84%% of round trips", a.Sub(from))
	}
}

func TestHint(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false), testPath(2, "wlan0", false))
	s.run(100 * time.Millisecond)
	from := s.now
	s.c.hint("wlan0")
	s.run(time.Millisecond)
	if s.probes(2, from, s.now.Add(time.Millisecond)) != 1 || s.probes(1, from, s.now.Add(time.Millisecond)) != 0 {
		t.Errorf("a hint for wlan0: want one probe of BID 2 at once, none of BID 1")
	}
	s.up[2] = false
	s.c.hint("wlan0")
	s.run(time.Second)
	if s.state(2) != Dead {
		t.Errorf("hinted path not answering: %s, want dead", s.state(2))
	}
}

// The home agent restarts without its state: the paths answer, the tunnels
// do not, and the monitor says so once.
func TestHomeAgentLostBindings(t *testing.T) {
	s := newSim(t, true, testPath(1, "eth0", false), testPath(2, "wlan0", false))
	s.rate[1] = time.Millisecond
	s.run(2 * time.Second)
	if s.homeLost != 0 {
		t.Fatalf("home lost %d times while all was well", s.homeLost)
	}
	cut := s.now
	s.homeUp = false
	s.rate[1] = 0 // the home agent stopped tunnelling
	s.run(500 * time.Millisecond)
	if s.homeLost != 1 {
		t.Fatalf("home lost reported %d times, want 1", s.homeLost)
	}
	for _, c := range s.changes {
		if c.state == Dead && c.at.After(cut) {
			t.Errorf("BID %d dead: the paths are fine, only the home agent forgot", c.bid)
		}
	}
	// A flow that just ends is not a lost home agent.
	s2 := newSim(t, true, testPath(1, "eth0", false))
	s2.rate[1] = time.Millisecond
	s2.run(time.Second)
	s2.rate[1] = 0
	s2.run(10 * time.Second)
	if s2.homeLost != 0 {
		t.Errorf("home lost after a flow ended with the home agent well")
	}
	if n := s2.probes(0, t0, s2.now); n < 1 || n > 2 {
		t.Errorf("%d home checks for one flow's end, want 1", n)
	}
}

func TestChangedCareOfIsANewPath(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false))
	s.up[1] = false
	s.run(3 * time.Second)
	if s.state(1) != Dead {
		t.Fatalf("state %s, want dead", s.state(1))
	}
	p := testPath(1, "eth0", false)
	p.CoA = netip.MustParseAddr("2001:db8:1::99")
	s.up[1] = true
	s.c.setPaths([]Path{p}, s.now)
	s.run(10 * time.Millisecond)
	if s.state(1) != Alive {
		t.Errorf("a new care-of address on BID 1: %s, want alive at once (a new path)", s.state(1))
	}
}

func TestTimersDefaults(t *testing.T) {
	got := Timers{Interval: 20 * time.Millisecond}.withDefaults(true)
	d := Defaults(true)
	if got.Interval != 20*time.Millisecond || got.Idle != d.Idle || got.Multiplier != d.Multiplier || got.HoldDown != d.HoldDown {
		t.Errorf("withDefaults: %+v", got)
	}
	if got := (Timers{Interval: 2 * time.Second, Idle: time.Second}).withDefaults(false); got.Idle != 2*time.Second {
		t.Errorf("idle below interval: %v, want raised to the interval", got.Idle)
	}
}

// A stream that began 400ms before the black hole (an idle path is read
// every 250ms) is already
// watched at full speed.
func TestBlackHoleSoonAfterTrafficStarts(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false), testPath(2, "wlan0", false))
	s.run(10 * time.Second) // idle
	s.rate[1] = time.Millisecond
	s.run(400 * time.Millisecond)
	cut := s.now
	s.up[1] = false
	s.run(2 * time.Second)
	s.deadWithin(1, cut, 300*time.Millisecond)
}

// Sparse traffic (a packet every 600ms) proves the path without a probe.
func TestSparseTrafficNeedsNoProbe(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false))
	s.rate[1] = 600 * time.Millisecond
	s.run(5 * time.Second)
	from := s.now
	s.run(time.Minute)
	if n := s.probes(1, from, s.now); n != 0 {
		t.Errorf("%d probes in a minute of a packet every 600ms, want 0", n)
	}
}

// Bursts with pauses: at most a probe per pause, never a failure.
func TestBurstyTraffic(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false))
	from := s.now
	for range 200 {
		s.rate[1] = time.Millisecond
		s.run(20 * time.Millisecond)
		s.rate[1] = 0
		s.run(280 * time.Millisecond)
	}
	if n := s.probes(1, from, s.now); n > 200 {
		t.Errorf("%d probes over 200 bursts, want at most one a pause", n)
	}
	if d := s.firstChange(1, Dead, from); !d.IsZero() {
		t.Errorf("dead at %v", d.Sub(from))
	}
	t.Logf("%d probes over 200 bursts of 20ms every 300ms", s.probes(1, from, s.now))
}

// A node that only waits for traffic still finds a home agent that lost the
// bindings, by the home check's own keepalive; and while the home agent
// stays without them, it says so less and less often.
func TestHomeAgentLostWhileIdle(t *testing.T) {
	s := newSim(t, true, testPath(1, "eth0", false))
	s.run(30 * time.Second)
	if s.homeLost != 0 {
		t.Fatalf("home lost %d times while all was well", s.homeLost)
	}
	from := s.now
	s.homeUp = false
	s.run(15 * time.Second)
	if s.homeLost == 0 {
		t.Fatal("home lost not reported in 15s of an idle node")
	}
	s.run(10 * time.Minute)
	if s.homeLost > 16 {
		t.Errorf("home lost reported %d times in 10 min, want it to back off (a minute apart at most)", s.homeLost)
	}
	if n := s.probes(0, from, s.now); n > 60 {
		t.Errorf("%d home checks in 10 min", n)
	}
	t.Logf("home agent without our bindings for 10 min: reported %d times, %d home checks", s.homeLost, s.probes(0, from, s.now))
	s.homeUp = true
	s.rate[1] = 10 * time.Millisecond
	s.run(2 * time.Minute)
	before := s.homeLost
	s.rate[1] = 0
	s.run(time.Minute)
	if s.homeLost != before {
		t.Errorf("home lost after the home agent came back")
	}
}

// Several idle paths send their keepalives together: one wake-up a period.
func TestIdleKeepalivesTogether(t *testing.T) {
	s := newSim(t, false, testPath(1, "eth0", false), testPath(2, "wlan0", false), testPath(3, "wwan0", false))
	// Different phases to start with.
	s.run(300 * time.Millisecond)
	s.c.hint("wlan0")
	s.run(700 * time.Millisecond)
	s.c.hint("wwan0")
	s.run(5 * time.Second)
	from := s.now
	s.run(time.Minute)
	times := map[time.Time]bool{}
	n := 0
	for _, p := range s.pr.sent {
		if !p.at.Before(from) {
			times[p.at] = true
			n++
		}
	}
	if len(times) > 62 || n < 150 {
		t.Errorf("%d probes at %d distinct times in a minute of three idle paths: want about 180 at about 60", n, len(times))
	}
	t.Logf("%d probes at %d distinct times", n, len(times))
}
