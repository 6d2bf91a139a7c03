package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/testutil"
)

func TestEventsOrderAndLost(t *testing.T) {
	e := NewEvents(4)
	s := e.Subscribe()
	defer s.Close()
	for i := 1; i <= 10; i++ {
		e.Publish(Event{Kind: EventStatus, Message: fmt.Sprint(i)})
	}
	ctx := context.Background()
	var got []string
	for range 5 {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Time.IsZero() {
			t.Error("event not stamped")
		}
		got = append(got, fmt.Sprintf("%d:%s%s/%d", ev.Seq, ev.Kind, ev.Message, ev.Lost))
	}
	want := "1:status1/0 2:status2/0 3:status3/0 4:status4/0 10:lost/6"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	if e.Dropped() != 6 {
		t.Errorf("Dropped = %d", e.Dropped())
	}
	// Drained: new events flow again, numbered on.
	e.Publish(Event{Kind: EventReload})
	if ev, err := s.Next(ctx); err != nil || ev.Seq != 11 || ev.Kind != EventReload {
		t.Errorf("after drain: %+v %v", ev, err)
	}
	// A published time is kept.
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e.Publish(Event{Kind: EventReload, Time: when})
	if ev, _ := s.Next(ctx); !ev.Time.Equal(when) {
		t.Errorf("time = %v", ev.Time)
	}
}

func TestEventsLostMarkerKeepsOrder(t *testing.T) {
	// Reading one entry from a full queue makes room for one event, which
	// must come after the marker of the events lost before it.
	e := NewEvents(2)
	s := e.Subscribe()
	defer s.Close()
	for range 4 {
		e.Publish(Event{Kind: EventStatus}) // 1 2 kept, 3 4 lost
	}
	ctx := context.Background()
	s.Next(ctx) // 1; the queue is now [2, lost(3,4)]: still at the bound
	e.Publish(Event{Kind: EventStatus})
	e.Publish(Event{Kind: EventStatus})
	var got []string
	for {
		ev, ok, _ := s.tryNext()
		if !ok {
			break
		}
		got = append(got, fmt.Sprintf("%d/%d", ev.Seq, ev.Lost))
	}
	// 5 and 6 joined the marker rather than overtaking it.
	if strings.Join(got, " ") != "2/0 6/4" {
		t.Errorf("got %v", got)
	}
}

func TestEventsCloseAndContext(t *testing.T) {
	e := NewEvents(0)
	s := e.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Next: %v", err)
	}
	e.Publish(Event{Kind: EventReload})
	if e.Subscribers() != 1 {
		t.Errorf("Subscribers = %d", e.Subscribers())
	}
	e.Close()
	if e.Subscribers() != 0 {
		t.Errorf("Subscribers after Close = %d", e.Subscribers())
	}
	// Queued events first, then the end.
	if ev, err := s.Next(context.Background()); err != nil || ev.Kind != EventReload {
		t.Errorf("queued event after Close: %+v %v", ev, err)
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrEventsClosed) {
		t.Errorf("after Close: %v", err)
	}
	e.Publish(Event{Kind: EventReload}) // no-op, no panic
	if _, err := e.Subscribe().Next(context.Background()); !errors.Is(err, ErrEventsClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
}

func TestEventsConcurrentPublish(t *testing.T) {
	e := NewEvents(100000)
	s := e.Subscribe()
	defer s.Close()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				e.Publish(Event{Kind: EventStatus})
			}
		})
	}
	wg.Wait()
	for want := uint64(1); want <= 4000; want++ {
		ev, err := s.Next(context.Background())
		if err != nil || ev.Seq != want {
			t.Fatalf("event %d: %+v %v", want, ev, err)
		}
	}
}

func TestEventsStream(t *testing.T) {
	ev, ts := startEventServer(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := openEvents(t, ctx, ts)
	if ev.Subscribers() != 1 {
		t.Fatalf("Subscribers = %d after Events returned", ev.Subscribers())
	}
	b := sampleMN().bindings[0]
	ev.Publish(Event{Kind: EventBinding, Binding: &b})
	ev.Publish(Event{Kind: EventReload, Message: "configuration reloaded"})
	ev.Publish(Event{Kind: EventBinding, Binding: &b, Removed: true})

	got, err := st.Next()
	if err != nil || got.Seq != 1 || got.Kind != EventBinding || got.Binding == nil || *got.Binding != b || got.Removed {
		t.Errorf("event 1: %+v %v", got, err)
	}
	got, err = st.Next()
	if err != nil || got.Seq != 2 || got.Kind != EventReload || got.Message != "configuration reloaded" || got.Binding != nil {
		t.Errorf("event 2: %+v %v", got, err)
	}
	got, err = st.Next()
	if err != nil || got.Seq != 3 || !got.Removed {
		t.Errorf("event 3: %+v %v", got, err)
	}

	// Cancelling the context ends the stream on both sides.
	cancel()
	if _, err := st.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
	waitFor(t, func() bool { return ev.Subscribers() == 0 })
}

func TestEventsWireFormat(t *testing.T) {
	ev, ts := startEventServer(t, 0)
	done := make(chan struct{})
	var code int
	var ctype string
	var body []byte
	go func() {
		defer close(done)
		c, h, b := raw(t, ts.sock, "GET", "/v1/events", "")
		code, ctype, body = c, h.Get("Content-Type"), b
	}()
	waitFor(t, func() bool { return ev.Subscribers() == 1 })
	when := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	i := sampleMN().ifaces[0]
	ev.Publish(Event{Kind: EventInterface, Interface: &i, Time: when})
	ev.Publish(Event{Kind: EventReload, Time: when})
	ev.Close() // ends the stream cleanly
	<-done
	want := `{"seq":1,"time":"2026-05-06T07:08:09Z","kind":"interface","interface":{"name":"eth0","index":2,"bid":1,"coa":"2001:db8:1::10","priority":30,"state":"up","home_link":false,"metered":false}}
{"seq":2,"time":"2026-05-06T07:08:09Z","kind":"reload"}
`
	if code != 200 || ctype != "application/x-ndjson" || string(body) != want {
		t.Errorf("stream %d %q:\n%s\nwant:\n%s", code, ctype, body, want)
	}
}

// A subscriber that does not read loses events but never blocks Publish;
// once it reads, what it gets plus what it is told it lost is everything.
func TestEventsSlowHTTPSubscriber(t *testing.T) {
	ev, ts := startEventServer(t, 8)
	st := openEvents(t, t.Context(), ts)
	// ~5 MB of events: far more than the socket buffers and the queue hold.
	const n = 5000
	pad := strings.Repeat("x", 1000)
	for range n {
		ev.Publish(Event{Kind: EventStatus, Message: pad})
	}
	var received, lost, last uint64
	for last < n {
		e, err := st.Next()
		if err != nil {
			t.Fatalf("after %d events: %v", received, err)
		}
		if e.Seq <= last {
			t.Fatalf("seq went from %d to %d", last, e.Seq)
		}
		if e.Kind == EventLost {
			lost += e.Lost
			if e.Seq-last != e.Lost {
				t.Fatalf("lost marker seq %d after %d claims %d lost", e.Seq, last, e.Lost)
			}
		} else {
			received++
			if e.Seq != last+1 {
				t.Fatalf("hole without a lost marker: %d after %d", e.Seq, last)
			}
		}
		last = e.Seq
	}
	if received+lost != n || lost == 0 {
		t.Errorf("received %d + lost %d, want %d with some lost", received, lost, n)
	}
	if ev.Dropped() != lost {
		t.Errorf("Dropped = %d, stream said %d", ev.Dropped(), lost)
	}
}

func TestServeEndsStreamsOnShutdown(t *testing.T) {
	_, ts := startEventServer(t, 0)
	st := openEvents(t, context.Background(), ts)
	ts.cancel()
	if err := <-ts.done; err != nil {
		t.Fatal(err)
	}
	ts.done <- nil // for the cleanup
	if _, err := st.Next(); err == nil {
		t.Error("stream still open after shutdown")
	} else if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") {
		t.Logf("stream ended with %v", err)
	}
	if _, err := ts.client.Status(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("after shutdown: %v", err)
	}
}

// startEventServer starts mcoad's API with an event broker of queue
// events per subscriber.
func startEventServer(t *testing.T, queue int) (*Events, *testServer) {
	t.Helper()
	ev := NewEvents(queue)
	cfg := mnConfig(sampleMN())
	cfg.Events = ev
	return ev, startServer(t, cfg)
}

// openEvents opens ts's event stream for the test.
func openEvents(t *testing.T, ctx context.Context, ts *testServer) *EventStream {
	t.Helper()
	st, err := ts.client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, "the condition", cond)
}

func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{0, 1, 8} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			e := NewEvents(64)
			for range subs {
				s := e.Subscribe() // never read: the steady state is the lost path
				defer s.Close()
			}
			bd := sampleMN().bindings[0]
			b.ReportAllocs()
			for b.Loop() {
				e.Publish(Event{Kind: EventBinding, Binding: &bd})
			}
		})
	}
}

func BenchmarkPublishNext(b *testing.B) {
	e := NewEvents(64)
	s := e.Subscribe()
	defer s.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e.Publish(Event{Kind: EventReload})
		if _, err := s.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
