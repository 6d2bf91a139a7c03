package control

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultEventBuffer is how many events a subscriber may fall behind before
// it starts losing them.
const DefaultEventBuffer = 256

// ErrEventsClosed is returned by Subscription.Next once the broker or the
// subscription is closed and no queued event is left.
var ErrEventsClosed = errors.New("event stream closed")

// Events is the broker behind GET /v1/events: the daemon Publishes state
// changes, each subscriber (one per stream) gets them in order. Publish never
// blocks on a subscriber: each has a bounded queue, and when it is full the
// events it misses are replaced by one EventLost event counting them, so a
// reader sees exactly where its stream has a hole.
type Events struct {
	buffer  int
	dropped atomic.Uint64 // events lost over all subscribers, for metrics

	mu     sync.Mutex
	seq    uint64
	subs   map[*Subscription]struct{}
	closed bool
}

// NewEvents returns a broker whose subscribers each queue up to buffer events
// (DefaultEventBuffer if buffer <= 0).
func NewEvents(buffer int) *Events {
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	return &Events{buffer: buffer, subs: make(map[*Subscription]struct{})}
}

// Publish numbers ev (Seq), stamps it with the current time if Time is zero,
// and queues it for every subscriber. It is safe for concurrent use; its cost
// does not depend on how fast subscribers read.
func (e *Events) Publish(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.seq++
	ev.Seq = e.seq
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	for s := range e.subs {
		if !s.push(ev) {
			e.dropped.Add(1)
		}
	}
}

// Subscribe starts a subscription that receives the events published from
// now on. Close it when done.
func (e *Events) Subscribe() *Subscription {
	s := &Subscription{e: e, buffer: e.buffer, notify: make(chan struct{}, 1)}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		s.closed = true
		return s
	}
	e.subs[s] = struct{}{}
	return s
}

// Subscribers returns how many subscriptions are open.
func (e *Events) Subscribers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

// Dropped returns how many events subscribers have lost in total.
func (e *Events) Dropped() uint64 { return e.dropped.Load() }

// Close ends every subscription (after their queued events) and makes
// Publish a no-op.
func (e *Events) Close() {
	e.mu.Lock()
	subs := e.subs
	e.subs = map[*Subscription]struct{}{}
	e.closed = true
	e.mu.Unlock()
	for s := range subs {
		s.markClosed()
	}
}

// Subscription is one reader of an Events broker.
type Subscription struct {
	e      *Events
	buffer int
	notify chan struct{} // capacity 1: "the queue changed"

	mu     sync.Mutex
	queue  []Event
	closed bool
}

// push queues ev and reports whether it was kept (false: lost).
func (s *Subscription) push(ev Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true
	}
	kept := true
	switch n := len(s.queue); {
	case n < s.buffer:
		s.queue = append(s.queue, ev)
	case s.queue[n-1].Kind == EventLost:
		last := &s.queue[n-1]
		last.Lost++
		last.Seq = ev.Seq
		kept = false
	default:
		// The marker is the one entry allowed over the bound; its Seq is
		// that of the last event it replaces.
		s.queue = append(s.queue, Event{Seq: ev.Seq, Time: ev.Time, Kind: EventLost, Lost: 1})
		kept = false
	}
	s.wake()
	return kept
}

func (s *Subscription) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Next returns the next event, waiting for one until ctx is done. After
// Close it returns the events still queued, then ErrEventsClosed.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		if ev, ok, closed := s.tryNext(); ok {
			return ev, nil
		} else if closed {
			return Event{}, ErrEventsClosed
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// tryNext pops the next queued event without waiting.
func (s *Subscription) tryNext() (ev Event, ok, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return Event{}, false, s.closed
	}
	ev = s.queue[0]
	s.queue[0] = Event{} // let the pointed-to objects go
	s.queue = s.queue[1:]
	return ev, true, false
}

// Close ends the subscription and unregisters it from the broker.
func (s *Subscription) Close() {
	s.e.mu.Lock()
	delete(s.e.subs, s)
	s.e.mu.Unlock()
	s.markClosed()
}

func (s *Subscription) markClosed() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wake()
}
