package lab

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mcoad/mcoad/pkg/control"
)

// buLog is what one mcoa-ha process reported on GET /v1/events about the
// Binding Updates it received (kind "bu"), in order.
type buLog struct {
	mu   sync.Mutex
	bus  []control.BU
	last time.Time // when its last event of any kind came
}

// follow subscribes to d's events and records its BUs until the process
// ends its stream. Once it returns, nothing the daemon receives is missed.
func (l *buLog) follow(c *control.Client) error {
	// The stream lives as long as the process; only opening it has a
	// deadline.
	ctx, cancel := context.WithCancel(context.Background())
	t := time.AfterFunc(5*time.Second, cancel)
	s, err := c.Events(ctx)
	t.Stop()
	if err != nil {
		cancel()
		return fmt.Errorf("lab: events: %w", err)
	}
	go func() {
		defer cancel()
		defer s.Close()
		for {
			ev, err := s.Next()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.last = time.Now()
			if ev.Kind == control.EventBU && ev.BU != nil {
				l.bus = append(l.bus, *ev.BU)
			}
			l.mu.Unlock()
		}
	}()
	return nil
}

// buSettle is how long the event stream must be quiet before BUsSince
// returns: the daemon publishes a BU's event before the cache change it
// causes can be seen, but the event still has to cross its socket.
const buSettle = 20 * time.Millisecond

// BUMark returns how many Binding Updates the daemon (mcoa-ha) has
// reported so far, so that BUsSince can return those that come after.
func (d *Daemon) BUMark() int {
	l := d.buLog()
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.bus)
}

// BUsSince returns the Binding Updates the daemon (mcoa-ha, both roles)
// reported on GET /v1/events since mark (BUMark; 0: since it started), in
// order, dropped ones included. It first waits (at most a second) for its
// event stream to be quiet for buSettle.
func (d *Daemon) BUsSince(mark int) []control.BU {
	l := d.buLog()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(buSettle / 4) {
		l.mu.Lock()
		quiet := time.Since(l.last) >= buSettle
		l.mu.Unlock()
		if quiet {
			break
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if mark > len(l.bus) {
		return nil
	}
	return append([]control.BU(nil), l.bus[mark:]...)
}

// buLog returns the current process's record (an empty one for mcoad).
func (d *Daemon) buLog() *buLog {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bus == nil {
		return &buLog{}
	}
	return d.bus
}

// Processed returns the BUs of bus that mcoa-ha processed (answered, or
// accepted without an answer), leaving out those it dropped.
func Processed(bus []control.BU) []control.BU {
	var out []control.BU
	for _, bu := range bus {
		if bu.Dropped == "" {
			out = append(out, bu)
		}
	}
	return out
}
