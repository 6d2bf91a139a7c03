package bul

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// countTransport counts BUs without copying them, as a cheap Transport.
type countTransport struct {
	n    int
	last uint16
	ch   chan struct{}
}

func (c *countTransport) Send(p *proto.Packet, _ proto.Signer) error {
	c.n++
	c.last = p.MH.Sequence
	if c.ch != nil {
		c.ch <- struct{}{}
	}
	return nil
}

func benchAddrs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		a := coa4.As16()
		a[14], a[15] = byte(i>>8), byte(i)
		out[i] = netip.AddrFrom16(a)
	}
	return out
}

func reportP99(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
}

// BenchmarkSetCareOfsToBU measures the deterministic machine from SetCareOfs
// carrying a new CoA to the BU handed to the transport, with three other
// bindings registered.
func BenchmarkSetCareOfsToBU(b *testing.B) {
	for _, mode := range []Mode{ModeBulk, ModeIndividual} {
		b.Run(string(mode), func(b *testing.B) {
			tr := &countTransport{}
			cfg := Config{HomeAddress: hoa, HomeAgent: ha, Transport: tr, Mode: mode, Store: NewMemStore()}
			if err := cfg.normalize(); err != nil {
				b.Fatal(err)
			}
			c := newMachine(cfg)
			now := t0
			cos := []CareOf{eth0, wlan, wwan, {BID: 4, Iface: "eth1", Ifindex: 14, Priority: 5}}
			c.setCareOfs(cos[:3], now)
			for _, e := range c.ents {
				e.registered, e.regCoA, e.regPrio = true, e.coa, e.prio
				e.expires, e.refreshAt = now.Add(time.Hour*24*365), now.Add(time.Hour*24*365)
				c.supersede(e)
			}
			now = now.Add(time.Second) // past the setup's MAX_UPDATE_RATE window
			addrs := benchAddrs(1024)
			lat := make([]time.Duration, 0, b.N)
			sent := tr.n
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				now = now.Add(400 * time.Millisecond) // within MAX_UPDATE_RATE
				cos[3].Addr = addrs[i%len(addrs)]
				start := time.Now()
				c.setCareOfs(cos, now)
				lat = append(lat, time.Since(start))
				if tr.n != sent+i+1 {
					b.Fatalf("op %d: %d BUs sent", i, tr.n-sent)
				}
			}
			b.StopTimer()
			reportP99(b, lat)
		})
	}
}

// BenchmarkEngineSetCareOfsToBU is the same through Run: the watcher's
// goroutine calls SetCareOfs, the engine goroutine sends the BU.
func BenchmarkEngineSetCareOfsToBU(b *testing.B) {
	clk := clock.NewFake(t0)
	tr := &countTransport{ch: make(chan struct{}, 1)}
	e, err := New(Config{HomeAddress: hoa, HomeAgent: ha, Transport: tr, Clock: clk, Mode: ModeIndividual})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	cos := []CareOf{{BID: 4, Iface: "eth1", Ifindex: 14, Priority: 5}}
	addrs := benchAddrs(1024)
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		clk.Advance(400 * time.Millisecond)
		cos[0].Addr = addrs[i%len(addrs)]
		start := time.Now()
		if err := e.SetCareOfs(cos); err != nil {
			b.Fatal(err)
		}
		<-tr.ch
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportP99(b, lat)
	cancel()
	<-e.Done()
}
