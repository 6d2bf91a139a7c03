package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mcoad/mcoad/pkg/control"
)

// events follows a daemon's GET /v1/events on a goroutine.
type events struct {
	ch     chan control.Event
	stream *control.EventStream
}

func follow(ctx context.Context, c *control.Client) (*events, error) {
	s, err := c.Events(ctx)
	if err != nil {
		return nil, err
	}
	e := &events{ch: make(chan control.Event, 1024), stream: s}
	go func() {
		defer close(e.ch)
		for {
			ev, err := s.Next()
			if err != nil {
				return
			}
			e.ch <- ev
		}
	}()
	return e, nil
}

// wait returns the first event that matches, skipping the others.
func (e *events) wait(ctx context.Context, timeout time.Duration, what string, match func(control.Event) bool) (control.Event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case ev, ok := <-e.ch:
			if !ok {
				return ev, fmt.Errorf("%s: event stream ended", what)
			}
			if match(ev) {
				return ev, nil
			}
		case <-t.C:
			return control.Event{}, fmt.Errorf("%s: no event within %v", what, timeout)
		case <-ctx.Done():
			return control.Event{}, ctx.Err()
		}
	}
}

// registeredAfter waits for mcoad's event that bid's home binding is
// registered after t0.
func (b *bench) registeredAfter(ctx context.Context, timeout time.Duration, what string, bid uint16, t0 time.Time) (control.Event, error) {
	return b.mnEv.wait(ctx, timeout, what, func(ev control.Event) bool {
		return ev.Kind == control.EventBinding && ev.Binding != nil && !ev.Removed && ev.Binding.Role == control.RoleHA &&
			ev.Binding.BID == bid && ev.Binding.State == "registered" && ev.Time.After(t0)
	})
}

// removedAfter waits for mcoa-ha's event that bid's binding left its
// cache after t0.
func (b *bench) removedAfter(ctx context.Context, timeout time.Duration, what string, bid uint16, t0 time.Time) (control.Event, error) {
	return b.haEv.wait(ctx, timeout, what, func(ev control.Event) bool {
		return ev.Kind == control.EventCache && ev.Removed && ev.Cache != nil && ev.Cache.BID == bid && ev.Time.After(t0)
	})
}
