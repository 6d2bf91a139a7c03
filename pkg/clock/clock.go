// Package clock injects time so that the protocol state machines (BUL,
// binding cache, return routability) are tested with a fake clock, without
// sleeping.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock is the time source of a state machine.
type Clock interface {
	Now() time.Time
	// NewTimer returns a stopped-or-running timer whose channel receives
	// once after d, like time.NewTimer.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the state machines use.
type Timer interface {
	C() <-chan time.Time
	// Stop and Reset behave as time.Timer's do in Go 1.23 and later: after
	// they return, no stale value is received from C.
	Stop() bool
	Reset(d time.Duration) bool
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// Fake is a manual clock for tests. Timers fire, in deadline order, only
// when Advance moves the time past them.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	t.arm(d)
	return t
}

// Advance moves the clock by d, firing every timer whose deadline is reached.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range f.timers {
			if t.active && !t.when.After(end) && (next == nil || t.when.Before(next.when)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		if next.when.After(f.now) {
			f.now = next.when
		}
		next.active = false
		select {
		case next.c <- f.now:
		default:
		}
	}
	f.now = end
}

// Pending returns the durations from now to every armed timer, sorted; tests
// use it to assert what a state machine scheduled.
func (f *Fake) Pending() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for _, t := range f.timers {
		if t.active {
			out = append(out, t.when.Sub(f.now))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

type fakeTimer struct {
	f      *Fake
	c      chan time.Time
	when   time.Time
	active bool
}

// arm is called with f.mu held.
func (t *fakeTimer) arm(d time.Duration) {
	t.when = t.f.now.Add(d)
	if !t.active {
		t.active = true
		found := false
		for _, x := range t.f.timers {
			if x == t {
				found = true
			}
		}
		if !found {
			t.f.timers = append(t.f.timers, t)
		}
	}
	// Drain a value that fired before a Reset, as Go 1.23 timers do.
	select {
	case <-t.c:
	default:
	}
	// A deadline already reached fires at once, as a real timer does;
	// otherwise a timer armed after the test advanced the clock would wait
	// for an Advance that never comes.
	if d <= 0 {
		t.active = false
		t.c <- t.f.now
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.active
	t.active = false
	select {
	case <-t.c:
	default:
	}
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.active
	t.arm(d)
	return was
}
