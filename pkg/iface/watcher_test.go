package iface

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/testutil"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/vishvananda/netlink"
)

// fakeBackend is a kernel with notifications and RA listeners under the
// test's control.
type fakeBackend struct {
	*fakeSource
	mu     sync.Mutex
	events chan struct{}
	lost   []int
	ra     map[int]*fakeRA
}

type fakeRA struct {
	deliver func(raInfo) bool
	closed  bool
}

func (f *fakeBackend) read() ([]netlink.Link, []netlink.Addr, []int, error) {
	links, addrs, _, err := staticBackend{f.fakeSource}.read()
	f.mu.Lock()
	defer f.mu.Unlock()
	lost := f.lost
	f.lost = nil
	return links, addrs, lost, err
}

func (f *fakeBackend) changes() <-chan struct{} { return f.events }

func (f *fakeBackend) listenRA(ifindex int, _ net.HardwareAddr, deliver func(raInfo) bool) (io.Closer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := &fakeRA{deliver: deliver}
	f.ra[ifindex] = l
	return closerFunc(func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		l.closed = true
		return nil
	}), nil
}

func (f *fakeBackend) Close() error { return nil }

func (f *fakeBackend) listener(ifindex int) *fakeRA {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ra[ifindex]
}

type closerFunc func() error

func (c closerFunc) Close() error { return c() }

// eventually polls cond (the watcher runs in its own goroutine) for up to
// five seconds of real time. It waits for the goroutine, not for time to
// pass: the fake clock stands still meanwhile.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, 100*time.Microsecond, what, cond)
}

// waitPending waits until the watcher armed a timer due within d.
func waitPending(t *testing.T, fc *clock.Fake, d time.Duration) {
	t.Helper()
	eventually(t, "a timer within "+d.String(), func() bool {
		for _, p := range fc.Pending() {
			if p <= d {
				return true
			}
		}
		return false
	})
}

func recv(t *testing.T, w *Watcher) Snapshot {
	t.Helper()
	select {
	case s := <-w.Updates():
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot delivered")
	}
	return Snapshot{}
}

func noUpdate(t *testing.T, w *Watcher) {
	t.Helper()
	select {
	case s := <-w.Updates():
		t.Errorf("unexpected snapshot, generation %d: %+v", s.Generation, s.CareOfs)
	default:
	}
}

// start runs w until the test ends.
func start(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
	})
}

// readAt makes the pending debounce fire and waits for the read.
func readAt(t *testing.T, w *Watcher, fc *clock.Fake, d time.Duration) {
	t.Helper()
	// A timer armed for 0 fires at once, as a real one does: nothing to
	// wait for or advance.
	if d > 0 {
		waitPending(t, fc, d)
		fc.Advance(d)
	}
	eventually(t, "the read", func() bool { s, _ := w.Current(); return s.Time.Equal(fc.Now()) })
}

func TestWatcherSnapshots(t *testing.T) {
	src := &fakeSource{}
	src.set([]netlink.Link{eth(2, "eth0", up)}, []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0)})
	fc := clock.NewFake(t0)
	w, err := New(&Config{Source: src, Clock: fc, Rules: []Rule{{Match: "eth*", Priority: 30}}})
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)

	s := recv(t, w)
	if s.Generation != 1 || !equalCareOfs(s.CareOfs, []CareOf{co(1, "eth0", 2, "2001:db8:1::2", 30, false)}) {
		t.Fatalf("first snapshot %+v", s)
	}
	if err := w.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v", err)
	}

	// A change, then a hint: one snapshot after the debounce.
	src.set([]netlink.Link{eth(2, "eth0", up), eth(3, "wlan0", up)},
		[]netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:2::3/64", 0)})
	w.Hint()
	waitPending(t, fc, DefaultDebounce)
	fc.Advance(DefaultDebounce - time.Millisecond)
	noUpdate(t, w)
	fc.Advance(time.Millisecond)
	s = recv(t, w)
	want := []CareOf{co(1, "eth0", 2, "2001:db8:1::2", 30, false), co(2, "wlan0", 3, "2001:db8:2::3", 0, false)}
	if s.Generation != 2 || !equalCareOfs(s.CareOfs, want) {
		t.Fatalf("after adding wlan0: %+v", s)
	}

	// A read that changes nothing delivers nothing.
	w.Hint()
	readAt(t, w, fc, DefaultDebounce)
	noUpdate(t, w)
	if c, _ := w.Current(); c.Generation != 2 {
		t.Errorf("generation %d after an idle read", c.Generation)
	}

	// Only Interfaces changed (eth1 appears without an address): Current
	// shows it, Updates stays quiet.
	src.set([]netlink.Link{eth(2, "eth0", up), eth(3, "wlan0", up), eth(4, "eth1", noCarrier)},
		[]netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:2::3/64", 0)})
	w.Hint()
	readAt(t, w, fc, DefaultDebounce)
	noUpdate(t, w)
	if c, _ := w.Current(); len(c.Interfaces) != 3 {
		t.Errorf("Current has %d interfaces", len(c.Interfaces))
	}

	// Latest wins: three changes unread, one snapshot, the last.
	for i, a := range []string{"2001:db8:3::1/64", "2001:db8:3::2/64", "2001:db8:3::3/64"} {
		src.set([]netlink.Link{eth(2, "eth0", up)}, []netlink.Addr{mkAddr(2, a, 0)})
		w.Hint()
		readAt(t, w, fc, DefaultDebounce)
		if c, _ := w.Current(); c.Generation != uint64(3+i) {
			t.Fatalf("generation %d, want %d", c.Generation, 3+i)
		}
	}
	s = recv(t, w)
	if s.Generation != 5 || s.CareOfs[0].Addr != netip.MustParseAddr("2001:db8:3::3") {
		t.Errorf("latest snapshot %+v", s)
	}
	noUpdate(t, w)
}

func TestWatcherSetters(t *testing.T) {
	src := &fakeSource{}
	src.set([]netlink.Link{eth(2, "eth0", up), eth(3, "wwan0", up)},
		[]netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:3::3/64", 0)})
	fc := clock.NewFake(t0)
	w, err := New(&Config{Source: src, Clock: fc, Rules: []Rule{{Match: "eth*", Priority: 30}, {Match: "wwan*", Priority: 20}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetBIDPriority(1, 1); !errors.Is(err, ErrUnknownBID) {
		t.Errorf("SetBIDPriority before the first read: %v", err)
	}
	start(t, w)
	recv(t, w)
	prios := func(s Snapshot) map[string]uint8 {
		m := map[string]uint8{}
		for _, c := range s.CareOfs {
			m[c.Iface] = c.Priority
		}
		return m
	}

	w.SetMetered("wwan0", true)
	readAt(t, w, fc, DefaultDebounce)
	if p := prios(recv(t, w)); p["wwan0"] != 1 {
		t.Errorf("metered: %v", p)
	}
	w.SetMetered("wwan0", false)
	readAt(t, w, fc, DefaultDebounce)
	if p := prios(recv(t, w)); p["wwan0"] != 20 {
		t.Errorf("no longer metered: %v", p)
	}

	if err := w.SetBIDPriority(999, 1); !errors.Is(err, ErrUnknownBID) {
		t.Errorf("SetBIDPriority(999): %v", err)
	}
	if err := w.SetBIDPriority(2, 99); err != nil {
		t.Fatal(err)
	}
	readAt(t, w, fc, DefaultDebounce)
	if p := prios(recv(t, w)); p["wwan0"] != 99 || p["eth0"] != 30 {
		t.Errorf("after SetBIDPriority: %v", p)
	}

	if err := w.SetRules([]Rule{{Match: "[", Priority: 1}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad rules accepted: %v", err)
	}
	if err := w.SetRules([]Rule{{Match: "wwan*", Exclude: true}}); err != nil {
		t.Fatal(err)
	}
	readAt(t, w, fc, DefaultDebounce)
	// eth0's rule is gone with the old rules: the default priority (0).
	if s := recv(t, w); len(s.CareOfs) != 1 || s.CareOfs[0].Iface != "eth0" || s.CareOfs[0].Priority != 0 {
		t.Errorf("after excluding wwan0: %+v", s.CareOfs)
	}
}

func newFakeBackendWatcher(t *testing.T, cfg *Config) (*Watcher, *fakeBackend, *clock.Fake) {
	t.Helper()
	fb := &fakeBackend{fakeSource: &fakeSource{}, ra: map[int]*fakeRA{}, events: make(chan struct{}, 1)}
	fc := clock.NewFake(t0)
	cfg.Clock = fc
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.open = func() (backend, error) { return fb, nil }
	return w, fb, fc
}

// A notification is read after the debounce; a failed read is retried.
// (The monitor's tests cover a lost subscription.)
func TestWatcherEvents(t *testing.T) {
	w, fb, fc := newFakeBackendWatcher(t, &Config{})
	fb.set([]netlink.Link{eth(2, "eth0", up)}, []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0)})
	start(t, w)
	recv(t, w)
	if fb.calls() != 1 {
		t.Fatalf("%d reads", fb.calls())
	}

	fb.set([]netlink.Link{eth(2, "eth0", up)}, []netlink.Addr{mkAddr(2, "2001:db8:1::3/64", 0)})
	fb.events <- struct{}{}
	readAt(t, w, fc, DefaultDebounce)
	if s := recv(t, w); s.CareOfs[0].Addr != netip.MustParseAddr("2001:db8:1::3") {
		t.Errorf("after an event: %+v", s.CareOfs)
	}

	fb.fail(errors.New("dump interrupted, again"))
	fb.set([]netlink.Link{eth(2, "eth0", up)}, []netlink.Addr{mkAddr(2, "2001:db8:1::4/64", 0)})
	fb.events <- struct{}{}
	waitPending(t, fc, DefaultDebounce)
	fc.Advance(DefaultDebounce)
	eventually(t, "the failed read", func() bool { return fb.calls() == 3 })
	fb.fail(nil)
	waitPending(t, fc, readRetry)
	fc.Advance(readRetry)
	readAt(t, w, fc, DefaultDebounce)
	if s := recv(t, w); s.CareOfs[0].Addr != netip.MustParseAddr("2001:db8:1::4") {
		t.Errorf("after the retry: %+v", s.CareOfs)
	}
}

func TestWatcherRouterAdvertisements(t *testing.T) {
	w, fb, fc := newFakeBackendWatcher(t, &Config{HomeAddress: hoa})
	links := []netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)}
	addrs := []netlink.Addr{mkAddr(2, "fe80::2/64", 0), mkAddr(3, "fe80::3/64", 0), mkAddr(3, "2001:db8:2::3/64", 0)}
	fb.set(links, addrs)
	start(t, w)
	s := recv(t, w)
	if len(s.CareOfs) != 1 {
		t.Fatalf("start: %+v", s.CareOfs)
	}
	eventually(t, "RA listeners", func() bool { return fb.listener(2) != nil && fb.listener(3) != nil })

	// eth0 hears the home prefix: it is on the home link.
	home := raInfo{Router: ll1, Lifetime: 30 * time.Minute, Prefixes: []raPrefix{{Prefix: homePfx, Valid: time.Hour}}}
	if !fb.listener(2).deliver(home) {
		t.Fatal("deliver refused")
	}
	readAt(t, w, fc, DefaultDebounce)
	s = recv(t, w)
	want := []CareOf{co(1, "eth1", 3, "2001:db8:2::3", 0, false), co(2, "eth0", 2, hoa.String(), 0, true)}
	if !equalCareOfs(s.CareOfs, want) {
		t.Errorf("home link: %+v\nwant %+v", s.CareOfs, want)
	}

	// A new prefix on eth1 is movement: read, shown, no CareOf change yet.
	if !fb.listener(3).deliver(raInfo{Router: ll2, Lifetime: time.Minute, Prefixes: []raPrefix{{Prefix: foreign2, Valid: time.Hour}}}) {
		t.Fatal("deliver refused")
	}
	readAt(t, w, fc, DefaultDebounce)
	noUpdate(t, w)
	if c, _ := w.Current(); c.Interfaces[1].Moves != 1 || len(c.Interfaces[1].Prefixes) != 1 {
		t.Errorf("eth1 = %+v", c.Interfaces[1])
	}

	// The RA expires: eth0 is no longer known as home.
	fc.Advance(time.Hour)
	waitPending(t, fc, DefaultDebounce)
	fc.Advance(DefaultDebounce)
	s = recv(t, w)
	if len(s.CareOfs) != 1 || s.CareOfs[0].HomeLink {
		t.Errorf("after the RA expired: %+v", s.CareOfs)
	}

	// eth0 loses its carrier: its listener closes, a late RA is refused.
	old := fb.listener(2)
	fb.set([]netlink.Link{eth(2, "eth0", noCarrier), eth(3, "eth1", up)}, addrs)
	w.Hint()
	readAt(t, w, fc, DefaultDebounce)
	eventually(t, "listener closed", func() bool { fb.mu.Lock(); defer fb.mu.Unlock(); return old.closed })
	if old.deliver(home) {
		t.Error("a closed listener delivered")
	}
	// Carrier back: a new listener (which solicits).
	fb.set(links, addrs)
	w.Hint()
	readAt(t, w, fc, DefaultDebounce)
	eventually(t, "new listener", func() bool { return fb.listener(2) != old })
}

func TestWatcherRotation(t *testing.T) {
	src := &fakeSource{}
	src.set([]netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)},
		[]netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:2::3/64", 0)})
	fc := clock.NewFake(t0)
	w, err := New(&Config{Source: src, Clock: fc, RotateBIDs: true, RotateInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	before := bidsOf(recv(t, w).CareOfs)
	waitPending(t, fc, time.Hour)
	fc.Advance(time.Hour)
	readAt(t, w, fc, DefaultDebounce)
	after := bidsOf(recv(t, w).CareOfs)
	if len(after) != 2 {
		t.Fatalf("after rotation: %v", after)
	}
	for k, v := range after {
		if v == 0 || v == before[k] {
			t.Errorf("BIDs %v, before %v", after, before)
		}
	}
}

// A link flapping 100 times a second for 10 seconds (fake time) costs a
// bounded number of reads, and the settled state is read.
func TestWatcherFlapping(t *testing.T) {
	w, fb, fc := newFakeBackendWatcher(t, &Config{})
	addrs := []netlink.Addr{mkAddr(2, "2001:db8:1::2/64", 0), mkAddr(3, "2001:db8:2::3/64", 0)}
	fb.set([]netlink.Link{eth(2, "eth0", up), eth(3, "eth1", up)}, addrs)
	start(t, w)
	recv(t, w)
	reads0 := fb.calls()
	for i := range 1000 {
		state := up
		if i%2 == 0 {
			state = noCarrier
		}
		fb.set([]netlink.Link{eth(2, "eth0", state), eth(3, "eth1", up)}, addrs)
		select {
		case fb.events <- struct{}{}:
		default:
		}
		eventually(t, "event taken", func() bool { return len(fb.events) == 0 })
		fc.Advance(10 * time.Millisecond)
	}
	// The last state (i = 999) has eth0 up. Let time pass until it is read.
	eventually(t, "the settled state", func() bool {
		fc.Advance(50 * time.Millisecond)
		c, _ := w.Current()
		return len(c.CareOfs) == 2 && c.Interfaces[0].Carrier
	})
	reads := fb.calls() - reads0
	if bound := DefaultBurst + int(DefaultMaxRate)*11 + 2; reads > bound {
		t.Errorf("%d reads for 1000 flaps in 10 s, bound %d", reads, bound)
	}
	t.Logf("%d reads for 1000 flaps in 10 s", reads)
}
