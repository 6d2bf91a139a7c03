package liveness

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/testutil"
	"github.com/mcoad/mcoad/pkg/clock"
)

// guard bounds a wait on the monitor's goroutine; no assertion depends on it.
const guard = 10 * time.Second

type chanProber struct {
	ch chan sentProbe
}

func (p *chanProber) Probe(ifindex int, src, dst netip.Addr, id, seq uint16) error {
	p.ch <- sentProbe{ifindex: ifindex, src: src, dst: dst, id: id, seq: seq}
	return nil
}

// The Run loop with a fake clock: a new path probed and alive on the
// answer, its keepalives, and dead once they go unanswered.
func TestMonitorRun(t *testing.T) {
	clk := clock.NewFake(t0)
	pr := &chanProber{ch: make(chan sentProbe, 64)}
	changes := make(chan []Health, 64)
	var polls atomic.Int32
	m, err := New(Config{
		HomeAgent: testHA, HomeAddress: testHoA, Prober: pr, Clock: clk,
		Traffic:  func() map[uint16]Traffic { polls.Add(1); return map[uint16]Traffic{} },
		OnChange: func(h []Health) { changes <- h },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run: %v", err)
		}
	})

	recvProbe := func() sentProbe {
		t.Helper()
		select {
		case p := <-pr.ch:
			return p
		case <-time.After(guard):
			t.Fatal("no probe")
		}
		return sentProbe{}
	}
	waitState := func(want State) []Health {
		t.Helper()
		for {
			select {
			case h := <-changes:
				if len(h) == 1 && h[0].State == want {
					return h
				}
			case <-time.After(guard):
				t.Fatalf("no change to %s", want)
			}
		}
	}

	p := testPath(1, "eth0", false)
	m.SetPaths([]Path{p})
	pb := recvProbe()
	if pb.src != p.CoA || pb.ifindex != p.Ifindex || pb.id != m.ID() {
		t.Fatalf("probe %+v", pb)
	}
	m.HandleReply(m.ID()^1, pb.seq, clk.Now()) // another pinger's: ignored
	m.HandleReply(m.ID(), pb.seq, clk.Now().Add(3*time.Millisecond))
	h := waitState(Alive)
	if h[0].RTT != 3*time.Millisecond {
		t.Errorf("RTT %v, want 3ms", h[0].RTT)
	}
	if got := m.Health(); len(got) != 1 || got[0].State != Alive {
		t.Errorf("Health() = %+v", got)
	}

	// Unanswered from now on: advance to each armed deadline in turn.
	cut := clk.Now()
	probes := 0
	for i := 0; i < 200; i++ {
		testutil.Eventually(t, guard, time.Millisecond, "the monitor's timer armed", func() bool { return len(clk.Pending()) > 0 })
		clk.Advance(clk.Pending()[0])
	drain:
		for {
			select {
			case <-pr.ch:
				probes++
			case h := <-changes:
				if h[0].State == Dead {
					tm := Defaults(false)
					d := h[0].Since.Sub(cut)
					want := tm.Idle + time.Duration(tm.Multiplier+1)*tm.Interval
					if d < want || d > want+tm.Interval {
						t.Errorf("dead %v after the last answer, want %v", d, want)
					}
					for len(pr.ch) > 0 {
						<-pr.ch
						probes++
					}
					if probes != tm.Multiplier+1 {
						t.Errorf("%d probes before dead, want %d", probes, tm.Multiplier+1)
					}
					if polls.Load() == 0 {
						t.Error("the tunnels' counters were never read")
					}
					return
				}
			default:
				break drain
			}
		}
	}
	t.Fatal("never dead")
}

func TestNewChecksConfig(t *testing.T) {
	for _, c := range []Config{
		{HomeAgent: netip.MustParseAddr("192.0.2.1"), Prober: &recorder{}},
		{HomeAgent: testHA},
		{HomeAgent: testHA, Prober: &recorder{}, HomeCheck: true},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}
