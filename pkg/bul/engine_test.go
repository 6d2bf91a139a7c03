package bul

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
)

// guard bounds a wait on the engine goroutine; it is not a sleep and no
// assertion depends on it.
const guard = 10 * time.Second

type runHarness struct {
	t      *testing.T
	clk    *clock.Fake
	tr     *fakeTransport
	e      *Engine
	events chan Event
	errc   chan error
}

func startEngine(t *testing.T, mut ...func(*Config)) *runHarness {
	t.Helper()
	r := &runHarness{t: t, clk: clock.NewFake(t0), events: make(chan Event, 256), errc: make(chan error, 1)}
	r.tr = &fakeTransport{clk: r.clk, ch: make(chan sent, 64)}
	cfg := Config{
		HomeAddress: hoa, HomeAgent: ha, Transport: r.tr, Clock: r.clk,
		OnChange: func(ev Event) {
			select {
			case r.events <- ev:
			default:
			}
		},
	}
	for _, f := range mut {
		f(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.errc <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-e.Done()
		if r.tr.encErr != nil {
			t.Error(r.tr.encErr)
		}
	})
	return r
}

func (r *runHarness) recv() sent {
	r.t.Helper()
	select {
	case s := <-r.tr.ch:
		return s
	case <-time.After(guard):
		r.t.Fatal("no packet from the engine")
	}
	return sent{}
}

// sync waits until the engine has handled everything sent to it so far
// (and re-armed its timer).
func (r *runHarness) sync() {
	r.t.Helper()
	if err := r.e.do(func(*machine, time.Time) error { return nil }); err != nil {
		r.t.Fatal(err)
	}
}

func TestRunRegistersRetransmitsAndStops(t *testing.T) {
	r := startEngine(t)
	if err := r.e.SetCareOfs([]CareOf{eth0, wlan}); err != nil {
		t.Fatal(err)
	}
	s := r.recv()
	checkBU(t, s, coa1, life420)
	r.sync()
	if p := r.clk.Pending(); len(p) != 1 || p[0] != 1500*time.Millisecond {
		t.Fatalf("timer %v, want one at 1.5 s", p)
	}
	r.clk.Advance(1500 * time.Millisecond)
	s = r.recv()
	if s.at.Sub(t0) != 1500*time.Millisecond {
		t.Fatalf("retransmitted at %v", s.at.Sub(t0))
	}
	r.e.HandlePacket(ba(s, 0, life420, echo(s, 0)...))
	r.sync()
	r.clk.Advance(20 * time.Second)
	snap := r.e.Snapshot()
	// The lifetime runs from the BU sent at 1.5 s: 421.5-21.5 = 400 s.
	if len(snap) != 2 || snap[0].State != StateRegistered || snap[0].ExpiresIn != 400 {
		t.Fatalf("snapshot %+v", snap)
	}
	st := r.e.Status()
	if st.Counters.BUsSent != 2 || st.Counters.Retransmissions != 1 || st.Counters.BAsAccepted != 1 {
		t.Fatalf("status %+v", st)
	}
	// The refresh timer is armed at 80% of the lifetime: 1.5+336 s, seen
	// from 21.5 s.
	r.sync()
	if p := r.clk.Pending(); len(p) != 1 || p[0] != 316*time.Second {
		t.Fatalf("timer %v, want the refresh in 316 s", p)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- r.e.Stop(context.Background(), true) }()
	d := r.recv()
	checkBU(t, d, coa1, 0)
	if len(d.p.MH.Options.BIDs) != 0 {
		t.Fatalf("stop sent %v", d)
	}
	r.e.HandlePacket(ba(d, 0, 0))
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(guard):
		t.Fatal("Stop did not return")
	}
	if err := <-r.errc; err != nil {
		t.Fatalf("Run returned %v after Stop", err)
	}
	if err := r.e.Register(); !errors.Is(err, ErrStopped) {
		t.Fatalf("command after stop: %v", err)
	}
	var kinds []string
	for len(r.events) > 0 {
		ev := <-r.events
		if ev.Binding != nil {
			kinds = append(kinds, string(ev.Type)+":"+string(ev.Binding.State))
		}
	}
	if len(kinds) == 0 || kinds[len(kinds)-1] != "removed:deregistering" {
		t.Fatalf("events %v", kinds)
	}
}

func TestRunRefreshTimer(t *testing.T) {
	r := startEngine(t, individual)
	r.e.SetCareOfs([]CareOf{eth0})
	s := r.recv()
	r.e.HandlePacket(ba(s, 0, 25, echo(s, 0)...)) // 100 s granted
	r.sync()
	if p := r.clk.Pending(); len(p) != 1 || p[0] != 80*time.Second {
		t.Fatalf("timer %v, want the refresh at 80 s", p)
	}
	r.clk.Advance(80 * time.Second)
	s = r.recv()
	wantBIDs(t, s, s.p.MH.Options.BIDs[0])
	if s.at.Sub(t0) != 80*time.Second || s.p.MH.Options.BIDs[0].ID != 1 {
		t.Fatalf("refresh %v at %v", s, s.at.Sub(t0))
	}
	r.sync()
	if got := r.e.Snapshot()[0].State; got != StateRefreshing {
		t.Fatalf("state %s", got)
	}
}

func TestRunCommands(t *testing.T) {
	r := startEngine(t, individual)
	// Set before the engine ran its first step: applied all the same.
	r.e.SetCareOfs([]CareOf{eth0, wlan})
	a, b := r.recv(), r.recv()
	r.e.HandlePacket(ba(a, 0, life420, echo(a, 0)...))
	r.e.HandlePacket(ba(b, 0, life420, echo(b, 0)...))
	r.sync()
	r.clk.Advance(time.Second)
	w := wlan
	w.Priority = 99
	if err := r.e.SetCareOfs([]CareOf{eth0, w}); err != nil {
		t.Fatal(err)
	}
	s := r.recv()
	if got := s.p.MH.Options.BIDs[0]; got.ID != 2 || got.PrioStatus != 99 {
		t.Fatalf("priority BU %v", s)
	}
	if err := r.e.Deregister([]uint16{77}); !errors.Is(err, ErrUnknownBID) {
		t.Fatalf("unknown BID: %v", err)
	}
	if err := r.e.Deregister([]uint16{1}); err != nil {
		t.Fatal(err)
	}
	s = r.recv()
	checkBU(t, s, coa1, 0)
	if err := r.e.SetCareOfs([]CareOf{{BID: 0, Addr: coa1}}); !errors.Is(err, ErrInvalidCareOf) {
		t.Fatalf("invalid set: %v", err)
	}
	if err := r.e.Stop(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if err := <-r.errc; err != nil {
		t.Fatal(err)
	}
}

func TestRunStopGivesUp(t *testing.T) {
	r := startEngine(t)
	r.e.SetCareOfs([]CareOf{eth0})
	r.recv()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.e.Stop(ctx, true) }()
	r.recv() // the de-registration, never answered
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(guard):
		t.Fatal("Stop did not give up")
	}
	<-r.e.Done()
}

func TestRunStopWithoutCareOf(t *testing.T) {
	r := startEngine(t)
	// Nothing to send from: de-registering stop returns at once.
	if err := r.e.Stop(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if err := <-r.errc; err != nil {
		t.Fatal(err)
	}
}

func TestHandlePacketCopies(t *testing.T) {
	r := startEngine(t)
	r.e.SetCareOfs([]CareOf{eth0, wlan})
	s := r.recv()
	p := ba(s, 0, life420, echo(s, 0)...)
	r.e.HandlePacket(p)
	// The caller reuses its packet at once.
	p.MH.Options.BIDs[0].ID = 999
	p.MH.Sequence++
	r.sync()
	if st := r.e.Status(); st.Counters.BAsAccepted != 1 {
		t.Fatalf("status %+v", st)
	}
}
