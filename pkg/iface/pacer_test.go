package iface

import (
	"testing"
	"time"
)

// simulate drives a pacer as Run does: events at the given times, the
// timer firing at the due times. It returns the times of the reads.
func simulate(p *pacer, events []time.Time, end time.Time) []time.Time {
	var reads []time.Time
	var due time.Time // zero: timer stopped
	fireUntil := func(limit time.Time) {
		for !due.IsZero() && !due.After(limit) {
			at := due
			due = time.Time{}
			if ok, next := p.fire(at); ok {
				reads = append(reads, at)
			} else if !next.IsZero() {
				due = next
			}
		}
	}
	for _, e := range events {
		fireUntil(e)
		due = p.event(e)
	}
	fireUntil(end)
	return reads
}

func TestPacerDebounce(t *testing.T) {
	p := newPacer(5*time.Millisecond, 50*time.Millisecond, 10, 8, t0)
	reads := simulate(p, []time.Time{t0}, t0.Add(time.Second))
	if len(reads) != 1 || !reads[0].Equal(t0.Add(5*time.Millisecond)) {
		t.Errorf("one event: reads %v, want one at +5ms", reads)
	}

	// A burst 1 ms apart costs one read, 5 ms after its last event.
	p = newPacer(5*time.Millisecond, 50*time.Millisecond, 10, 8, t0)
	var ev []time.Time
	for i := range 10 {
		ev = append(ev, t0.Add(time.Duration(i)*time.Millisecond))
	}
	reads = simulate(p, ev, t0.Add(time.Second))
	if len(reads) != 1 || !reads[0].Equal(t0.Add(14*time.Millisecond)) {
		t.Errorf("burst: reads %v, want one at +14ms", reads)
	}
}

func TestPacerMaxDelay(t *testing.T) {
	// Events every 2 ms for a second never leave 5 ms of quiet; the
	// maximum delay still reads every 50 ms (until the tokens run out).
	p := newPacer(5*time.Millisecond, 50*time.Millisecond, 1000, 1000, t0)
	var ev []time.Time
	for i := range 500 {
		ev = append(ev, t0.Add(time.Duration(2*i)*time.Millisecond))
	}
	reads := simulate(p, ev, t0.Add(2*time.Second))
	if len(reads) < 19 || len(reads) > 21 {
		t.Errorf("%d reads in a second of continuous events, want about 20", len(reads))
	}
	for i := 1; i < len(reads); i++ {
		if gap := reads[i].Sub(reads[i-1]); gap > 50*time.Millisecond+5*time.Millisecond {
			t.Errorf("reads %v and %v are %v apart", reads[i-1], reads[i], gap)
		}
	}
	last := ev[len(ev)-1]
	if r := reads[len(reads)-1]; r.Before(last) {
		t.Errorf("last read %v is before the last event %v", r, last)
	}
}

// A link flapping 100 times a second for 10 seconds: the reads are bounded
// by the burst plus the rate, and one read follows the last event.
func TestPacerFlapping(t *testing.T) {
	const rate, burst = 10, 8
	p := newPacer(5*time.Millisecond, 50*time.Millisecond, rate, burst, t0)
	var ev []time.Time
	for i := range 1000 {
		ev = append(ev, t0.Add(time.Duration(i)*10*time.Millisecond))
	}
	reads := simulate(p, ev, t0.Add(20*time.Second))
	if bound := burst + rate*10 + 1; len(reads) > bound {
		t.Errorf("%d reads, bound %d", len(reads), bound)
	}
	if len(reads) < rate*10/2 {
		t.Errorf("only %d reads in 10 s of changes: starved", len(reads))
	}
	last := ev[len(ev)-1]
	if r := reads[len(reads)-1]; r.Before(last) {
		t.Errorf("last read %v is before the last event %v: the settled state is never read", r, last)
	}
	// Once quiet again, the tokens come back: an isolated event is read
	// after the debounce only.
	after := reads[len(reads)-1].Add(10 * time.Second)
	again := simulate(p, []time.Time{after}, after.Add(time.Second))
	if len(again) != 1 || !again[0].Equal(after.Add(5*time.Millisecond)) {
		t.Errorf("after settling: reads %v", again)
	}
}

func TestPacerStaleFire(t *testing.T) {
	p := newPacer(5*time.Millisecond, 50*time.Millisecond, 10, 8, t0)
	if ok, next := p.fire(t0); ok || !next.IsZero() {
		t.Errorf("fire with nothing pending: %v %v", ok, next)
	}
	due := p.event(t0)
	if ok, next := p.fire(t0.Add(time.Millisecond)); ok || !next.Equal(due) {
		t.Errorf("early fire: %v %v, want false %v", ok, next, due)
	}
}
