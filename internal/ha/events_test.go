package ha

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/proto"
)

// serveEvents serves events on a control socket and returns a stream of
// them read through the control client, as the lab reads them.
func serveEvents(t *testing.T, a *Agent, events *control.Events) *control.EventStream {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "mcoa-ha.sock")
	srv, err := control.NewServer(control.Config{Socket: sock, HA: a, Events: events,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	// A bound on every read: a missing event fails the test, not hangs it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	s, err := control.NewClient(sock).Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// nextEvent reads the next event of kind, skipping others.
func nextEvent(t *testing.T, s *control.EventStream, kind string) control.Event {
	t.Helper()
	for {
		ev, err := s.Next()
		if err != nil {
			t.Fatalf("events: %v", err)
		}
		if ev.Kind == kind {
			return ev
		}
	}
}

// Every BU received is an event, answered or dropped, and the bindings it
// adds are cache events after it.
func TestAgentPublishesBUEvents(t *testing.T) {
	tr, events := newFake(), control.NewEvents(0)
	defer events.Close()
	a, err := New(haConfig(t), Deps{Transport: tr, Proxy: &fakeProxy{}, Events: events,
		Clock: clock.NewFake(time.Unix(1_700_000_000, 0))})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	s := serveEvents(t, a, events)

	tr.in <- bu(coa1, 7, 10, proto.BID{ID: 1, PrioStatus: 9, C: true, CoA: coa1}, proto.BID{ID: 2, PrioStatus: 5, C: true, CoA: coa2})
	tr.next(t)
	ev := nextEvent(t, s, control.EventBU)
	want := control.BU{Src: coa1, Dst: haAddr, HoA: hoa, Sequence: 7, BIDs: []uint16{1, 2}, Status: 0, Answered: true}
	if got := *ev.BU; !buEqual(got, want) {
		t.Fatalf("bu event %+v, want %+v", got, want)
	}
	for _, bid := range []uint16{1, 2} {
		ev := nextEvent(t, s, control.EventCache)
		if ev.Removed || ev.Cache.BID != bid || ev.Cache.HoA != hoa || !ev.Cache.HomeRegistration {
			t.Fatalf("cache event %+v (removed %v), want BID %d added", ev.Cache, ev.Removed, bid)
		}
	}

	// From a link-local source: dropped without answer.
	ll := netip.MustParseAddr("fe80::1")
	tr.in <- bu(ll, 8, 10, proto.BID{ID: 1, PrioStatus: 9})
	ev = nextEvent(t, s, control.EventBU)
	if ev.BU.Answered || ev.BU.Dropped != "bad-source" || ev.BU.Src != ll {
		t.Fatalf("dropped bu event %+v", *ev.BU)
	}

	// De-registration removes the bindings.
	tr.in <- bu(coa1, 9, 0)
	tr.next(t)
	if ev := nextEvent(t, s, control.EventBU); ev.BU.Sequence != 9 || !ev.BU.Answered {
		t.Fatalf("de-registration bu event %+v", *ev.BU)
	}
	for range 2 {
		if ev := nextEvent(t, s, control.EventCache); !ev.Removed {
			t.Fatalf("cache event %+v after de-registration, want removed", ev.Cache)
		}
	}
}

func buEqual(a, b control.BU) bool {
	return slices.Equal(a.BIDs, b.BIDs) && a.Src == b.Src && a.Dst == b.Dst && a.HoA == b.HoA && a.Sequence == b.Sequence &&
		a.Prefixes == b.Prefixes && a.Correspondent == b.Correspondent && a.Status == b.Status && a.Answered == b.Answered &&
		a.Dropped == b.Dropped && a.Refused == b.Refused
}

// The correspondent's BUs are events too, with those its return
// routability check drops.
func TestCorrespondentPublishesBUEvents(t *testing.T) {
	events := control.NewEvents(0)
	defer events.Close()
	a, tr, clk := startCNWith(t, cnConfig(t, true), Deps{Proxy: &fakeProxy{}, Events: events})
	s := serveEvents(t, a, events)
	x := newMobile(t, tr, clk)
	x.rr(coa1)
	tr.deliverRaw(x.buBytes(coa1, 1, time.Minute))
	x.ba(coa1)
	ev := nextEvent(t, s, control.EventBU)
	if b := ev.BU; !b.Correspondent || b.Src != coa1 || b.Dst != cnAddr || b.HoA != hoa || !b.Answered || b.Status != 0 ||
		!slices.Equal(b.BIDs, []uint16{1}) {
		t.Fatalf("bu event %+v", *b)
	}
	if ev := nextEvent(t, s, control.EventCache); ev.Cache.HomeRegistration || ev.Cache.CoA != coa1 {
		t.Fatalf("cache event %+v", ev.Cache)
	}

	// A wrong authenticator: dropped, with the reason.
	x.seq++
	k, _ := x.m.Ready(cnAddr, coa1)
	p := proto.Packet{Src: coa1, Dst: cnAddr, HomeAddress: hoa, MH: proto.Message{Type: proto.TypeBU,
		Sequence: x.seq, Flags: proto.FlagA, Lifetime: 10, Options: proto.Options{
			HasNonceIndices: true, HomeNonceIndex: k.HomeNonceIndex, CareofNonce: k.CareofNonceIndex,
			BIDs: []proto.BID{{ID: 1}}, HasAuthData: true}}}
	tr.deliver(&p, proto.BADSigner{Kbm: make([]byte, 20), CoA: coa1, Correspondent: cnAddr})
	ev = nextEvent(t, s, control.EventBU)
	if b := ev.BU; !b.Correspondent || b.Answered || b.Dropped != dropRR || ev.Message == "" {
		t.Fatalf("bu event %+v (%q)", *b, ev.Message)
	}
}
