package ha

import "time"

// tokenBucket bounds answers to unauthenticated packets (Binding Errors,
// HoT and CoT) to rate per second, bursts of rate included, so that the
// agent cannot be used as a reflector. The owner goroutine's.
type tokenBucket struct {
	rate    float64
	tokens  float64
	last    time.Time
	limited uint64 // answers not sent
}

// take reports whether an answer may go now, and counts one that may not.
func (b *tokenBucket) take(now time.Time) bool {
	b.tokens = min(b.tokens+now.Sub(b.last).Seconds()*b.rate, b.rate)
	b.last = now
	if b.tokens < 1 {
		b.limited++
		return false
	}
	b.tokens--
	return true
}
