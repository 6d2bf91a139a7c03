package homeagent

import (
	"context"
	"net/netip"
	"slices"

	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/relay"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/tunio"
)

// Forwarder is the home agent's data plane. Every home address with bindings
// has a route HoA/128 into the TUN device (Device); one goroutine reads
// what the kernel routes there, picks a binding and sends the packet
// encapsulated to its CoA. Another receives tunnelled packets from the
// mobile nodes on a raw socket for protocol 41, accepts those whose outer
// source is a registered CoA and whose inner source is that binding's home
// address, remembers which BID the flow came on, and writes the inner
// packet into the TUN device for the kernel to route on. Everything else
// is dropped and counted.
//
// The binding for a packet to a home address is the one the reverse flow
// (same ports, or failing that the same peer) last arrived on, so that the
// mobile node's flow policy decides both directions; otherwise the one
// with the highest priority (the draft's section 5.1: higher is
// preferred), then the lowest BID.
//
// Pulling home-address packets off the home link is ProxyND's job; the
// core must route the home prefix to the home agent. IPv6 forwarding
// (net.ipv6.conf.all.forwarding) must be on.
type Forwarder struct {
	relay relay.Relay[haState] // routes: HoA/128s and mobile network prefixes
	cfg   dataplane.HAConfig
	addr  [16]byte
}

var _ dataplane.HomeAgent = (*Forwarder)(nil)

type haState struct {
	byHoA map[[16]byte][]*haBinding // best first
	byCoA map[[16]byte][]*haBinding
	// nets are the mobile network prefixes (NEMO), longest first, each
	// with its mobile router's home address.
	nets []haNet
}

type haNet struct {
	pfx netip.Prefix
	hoa [16]byte
}

// bindings returns the bindings for packets to dst: its home address's,
// or those of the mobile router whose network holds dst.
func (st *haState) bindings(dst [16]byte) []*haBinding {
	if bs := st.byHoA[dst]; len(bs) > 0 || len(st.nets) == 0 {
		return bs
	}
	a := netip.AddrFrom16(dst)
	for _, n := range st.nets {
		if n.pfx.Contains(a) {
			return st.byHoA[n.hoa]
		}
	}
	return nil
}

type haBinding struct {
	b        dataplane.HABinding
	hoa, coa [16]byte
	ctr      *tunio.TunnelCounters
}

// sourceOK reports whether src may send through this binding: its home
// address, or an address of its mobile networks.
func (b *haBinding) sourceOK(src [16]byte) bool {
	if src == b.hoa {
		return true
	}
	if len(b.b.Prefixes) == 0 {
		return false
	}
	a := netip.AddrFrom16(src)
	for _, p := range b.b.Prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (b *haBinding) Rank() (uint8, uint16) { return b.b.Priority, b.b.BID }

// New creates the TUN device and sockets in the network namespace of
// the calling thread and starts the two packet loops.
func New(cfg *dataplane.HAConfig) (*Forwarder, error) {
	c, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	p := &Forwarder{cfg: c, addr: c.Address.As16()}
	empty := &haState{byHoA: map[[16]byte][]*haBinding{}, byCoA: map[[16]byte][]*haBinding{}}
	if err := p.relay.Init(c.Logger.With("dataplane", "ha"), c.Table, empty); err != nil {
		return nil, err
	}
	err = p.relay.Open(c.Device, c.MTU, !c.NoOffload, c.Mark, func() (*tunio.RawSocket, error) {
		dataplane.WarnIfNotForwarding(p.relay.Log)
		return tunio.NewRawSocket(packet.ProtoIPv6, 0, "")
	})
	if err != nil {
		p.relay.CloseAll()
		return nil, err
	}
	p.relay.Wg.Add(2)
	go p.relay.TxLoop(c.MTU, packet.Headroom, "home agent tunnel", p.placeTx)
	go p.rxLoop()
	return p, nil
}

// SetBindings makes the tunnelled set exactly bs (level-triggered): routes
// for home addresses that gained their first binding, none for those that
// lost their last, and the lookup tables the packet loops use.
func (p *Forwarder) SetBindings(ctx context.Context, bs []dataplane.HABinding) error {
	want, err := dataplane.CheckHABindings(bs)
	if err != nil {
		return err
	}
	return relay.SetBindings(&p.relay, ctx, want, buildHAState)
}

// buildHAState indexes checked bindings for the packet loops, each home
// address's best first, keeping the counters of bindings that stay. homes
// are the destinations to route into the device: home addresses (/128) and
// mobile network prefixes.
func buildHAState(want []dataplane.HABinding, old map[dataplane.BindingKey]*tunio.TunnelCounters) (*haState, map[dataplane.BindingKey]*tunio.TunnelCounters, map[netip.Prefix]bool) {
	st := &haState{byHoA: map[[16]byte][]*haBinding{}, byCoA: map[[16]byte][]*haBinding{}}
	ctrs := map[dataplane.BindingKey]*tunio.TunnelCounters{}
	homes := map[netip.Prefix]bool{}
	for _, b := range want {
		c := tunio.CounterFor(ctrs, old, dataplane.BindingKey{HoA: b.HoA, BID: b.BID})
		hb := &haBinding{b: b, hoa: b.HoA.As16(), coa: b.CoA.As16(), ctr: c}
		st.byHoA[hb.hoa] = append(st.byHoA[hb.hoa], hb)
		st.byCoA[hb.coa] = append(st.byCoA[hb.coa], hb)
		homes[netip.PrefixFrom(b.HoA, 128)] = true
		for _, pf := range b.Prefixes {
			if !homes[pf] {
				homes[pf] = true
				st.nets = append(st.nets, haNet{pfx: pf, hoa: hb.hoa})
			}
		}
	}
	slices.SortStableFunc(st.nets, func(a, b haNet) int { return b.pfx.Bits() - a.pfx.Bits() })
	for _, l := range st.byHoA {
		relay.SortBest(l)
	}
	return st, ctrs, homes
}

// placeTx: pick a binding -> encapsulate (see relay.txLoop).
func (p *Forwarder) placeTx(tp *relay.TxPipe, st *haState, buf []byte, size int) {
	pkt := buf[packet.Headroom:]
	bs := st.bindings([16]byte(pkt[24:40]))
	if len(bs) == 0 {
		p.relay.Drops.NoBinding.Add(1)
		return
	}
	if size > p.cfg.MTU {
		tp.TooBig(&p.relay.Drops, buf, size, &p.addr)
		return
	}
	b := relay.PickBinding(p.relay.Flows, bs, pkt[:size])
	m, err := packet.Encap(buf[:packet.Headroom+size], &p.addr, &b.coa)
	if err != nil {
		p.relay.Drops.Malformed.Add(1)
		return
	}
	tp.Add(buf[:m], &b.coa, b.ctr)
}

// rxLoop: raw socket -> check -> remember the flow -> TUN.
func (p *Forwarder) rxLoop() {
	defer p.relay.Wg.Done()
	rx := tunio.NewRxPipe(tunio.RxSlot, true, true)
	var meta tunio.RxMeta
	rx.Run(p.relay.Rx, &p.relay.Stop, p.relay.Log, "home agent tunnel receive", &p.relay.Drops, func(n int) {
		st := p.relay.State.Load()
		for i := range n {
			rx.Rb.Meta(i, &meta)
			if meta.Dst != p.addr {
				p.relay.Drops.Unknown.Add(1)
				continue
			}
			bs := st.byCoA[meta.Src]
			if len(bs) == 0 {
				p.relay.Drops.Unknown.Add(1)
				continue
			}
			inner := rx.Packet(i)
			if meta.Trunc || inner == nil {
				p.relay.Drops.Malformed.Add(1)
				continue
			}
			m, err := packet.DecapInner(inner, meta.Tclass)
			if err != nil {
				p.relay.Drops.Malformed.Add(1)
				continue
			}
			var b *haBinding
			for _, c := range bs {
				if c.sourceOK([16]byte(inner[8:24])) {
					b = c
					break
				}
			}
			if b == nil {
				p.relay.Drops.Spoofed.Add(1)
				continue
			}
			if !rx.Wr.Add(p.relay.Dev, rx.Bufs[i][:packet.VirtioNetHdrLen+m], p.cfg.MTU) {
				p.relay.Drops.Malformed.Add(1)
				continue
			}
			k, ports := relay.InnerFlow(inner[:m], true)
			p.relay.Flows.Learn(&k, ports, b.b.BID)
			b.ctr.RxPackets.Add(1)
			b.ctr.RxBytes.Add(uint64(m))
		}
	})
}

// Stats returns a snapshot of the counters of the current bindings.
func (p *Forwarder) Stats() dataplane.BindingStats { return p.relay.Stats() }

// Close removes the routes and the device and stops the loops.
func (p *Forwarder) Close() error {
	p.relay.Mu.Lock()
	if p.relay.Closed {
		p.relay.Mu.Unlock()
		return nil
	}
	p.relay.Closed = true
	p.relay.Mu.Unlock()
	err := p.relay.SetRoutes(nil)
	p.relay.CloseAll()
	p.relay.Wg.Wait()
	return err
}
