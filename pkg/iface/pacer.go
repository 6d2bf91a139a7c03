package iface

import "time"

// pacer decides when to re-read the kernel state after events: a debounce
// (a burst of events costs one read), a maximum delay from the first event
// of a burst (a stream of events closer than the debounce cannot postpone
// the read for ever) and a token bucket (a flapping link cannot make the
// watcher read, and the engine re-register, more than burst + rate*t times
// in t). Pure: the caller owns the timer and passes the time in.
type pacer struct {
	debounce time.Duration
	maxDelay time.Duration
	interval time.Duration // one token per interval
	burst    float64

	tokens   float64
	refilled time.Time
	pending  bool
	first    time.Time // first event of the pending burst
	due      time.Time
}

// tokenSlack absorbs float rounding at the instant a token is due.
const tokenSlack = 1e-9

func newPacer(debounce, maxDelay time.Duration, rate float64, burst int, now time.Time) *pacer {
	return &pacer{
		debounce: debounce,
		maxDelay: maxDelay,
		interval: time.Duration(float64(time.Second) / rate),
		burst:    float64(burst),
		tokens:   float64(burst),
		refilled: now,
	}
}

func (p *pacer) refill(now time.Time) {
	if el := now.Sub(p.refilled); el > 0 {
		p.tokens += float64(el) / float64(p.interval)
		if p.tokens > p.burst {
			p.tokens = p.burst
		}
		p.refilled = now
	}
}

// tokenAt is the earliest time a token is available.
func (p *pacer) tokenAt(now time.Time) time.Time {
	p.refill(now)
	if p.tokens >= 1-tokenSlack {
		return now
	}
	return now.Add(time.Duration((1 - p.tokens) * float64(p.interval)))
}

// event records a change at now and returns when the read is due.
func (p *pacer) event(now time.Time) time.Time {
	if !p.pending {
		p.pending = true
		p.first = now
	}
	due := now.Add(p.debounce)
	if lim := p.first.Add(p.maxDelay); due.After(lim) {
		due = lim
	}
	if t := p.tokenAt(now); due.Before(t) {
		due = t
	}
	p.due = due
	return due
}

// now asks for a read as soon as the rate allows (start, resubscription).
func (p *pacer) now(now time.Time) time.Time {
	p.pending = true
	p.first = now
	p.due = p.tokenAt(now)
	return p.due
}

// fire is called when the timer set to the last due time fires. It reports
// whether to read now (taking a token); if not, next is when to try again
// (zero: nothing pending).
func (p *pacer) fire(now time.Time) (read bool, next time.Time) {
	if !p.pending {
		return false, time.Time{}
	}
	if now.Before(p.due) {
		return false, p.due
	}
	p.refill(now)
	if p.tokens >= 1-tokenSlack {
		p.tokens--
		p.pending = false
		return true, time.Time{}
	}
	p.due = p.tokenAt(now)
	return false, p.due
}
