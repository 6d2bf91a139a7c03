package dataplane

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// HAPlane is the home agent's data plane. Every home address with bindings
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
type HAPlane struct {
	bindingPlane[haState] // routes: HoA/128s and mobile network prefixes
	cfg                   HAConfig
	addr                  [16]byte
}

// HAKey names a binding in HAStats.
type HAKey struct {
	HoA netip.Addr
	BID uint16
}

// HAStats is a snapshot of the home agent's counters.
type HAStats struct {
	Bindings map[HAKey]Counters
	Drops    Drops
}

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
	b        HABinding
	hoa, coa [16]byte
	ctr      *tunnelCounters
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

func (b *haBinding) rank() (uint8, uint16) { return b.b.Priority, b.b.BID }

// NewHAPlane creates the TUN device and sockets in the network namespace of
// the calling thread and starts the two packet loops.
func NewHAPlane(cfg *HAConfig) (*HAPlane, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &HAPlane{cfg: c, addr: c.Address.As16()}
	empty := &haState{byHoA: map[[16]byte][]*haBinding{}, byCoA: map[[16]byte][]*haBinding{}}
	if err := p.init(c.Logger.With("dataplane", "ha"), c.Table, empty); err != nil {
		return nil, err
	}
	err = p.open(c.Device, c.MTU, !c.NoOffload, c.Mark, func() (*rawSocket, error) {
		if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding"); err == nil && strings.TrimSpace(string(b)) != "1" {
			p.log.Warn("IPv6 forwarding is off: packets from mobile nodes will not be routed on")
		}
		return newRawSocket(protoIPv6, 0, "")
	})
	if err != nil {
		p.closeAll()
		return nil, err
	}
	p.wg.Add(2)
	go p.txLoop(c.MTU, headroom, "home agent tunnel", p.placeTx)
	go p.rxLoop()
	return p, nil
}

// SetBindings makes the tunnelled set exactly bs (level-triggered): routes
// for home addresses that gained their first binding, none for those that
// lost their last, and the lookup tables the packet loops use.
func (p *HAPlane) SetBindings(ctx context.Context, bs []HABinding) error {
	want, err := checkHABindings(bs)
	if err != nil {
		return err
	}
	return setBindings(&p.bindingPlane, ctx, want, buildHAState)
}

// buildHAState indexes checked bindings for the packet loops, each home
// address's best first, keeping the counters of bindings that stay. homes
// are the destinations to route into the device: home addresses (/128) and
// mobile network prefixes.
func buildHAState(want []HABinding, old map[HAKey]*tunnelCounters) (*haState, map[HAKey]*tunnelCounters, map[netip.Prefix]bool) {
	st := &haState{byHoA: map[[16]byte][]*haBinding{}, byCoA: map[[16]byte][]*haBinding{}}
	ctrs := map[HAKey]*tunnelCounters{}
	homes := map[netip.Prefix]bool{}
	for _, b := range want {
		c := counterFor(ctrs, old, HAKey{b.HoA, b.BID})
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
		sortBest(l)
	}
	return st, ctrs, homes
}

// placeTx: pick a binding -> encapsulate (see bindingPlane.txLoop).
func (p *HAPlane) placeTx(tp *txPipe, st *haState, buf []byte, size int) {
	pkt := buf[headroom:]
	bs := st.bindings([16]byte(pkt[24:40]))
	if len(bs) == 0 {
		p.drops.noBinding.Add(1)
		return
	}
	if size > p.cfg.MTU {
		tp.tooBig(&p.drops, buf, size, &p.addr)
		return
	}
	b := pickBinding(p.flows, bs, pkt[:size])
	m, err := encap(buf[:headroom+size], &p.addr, &b.coa)
	if err != nil {
		p.drops.malformed.Add(1)
		return
	}
	tp.add(buf[:m], &b.coa, b.ctr)
}

// rxLoop: raw socket -> check -> remember the flow -> TUN.
func (p *HAPlane) rxLoop() {
	defer p.wg.Done()
	rx := newRxPipe(rxSlot, true, true)
	var meta rxMeta
	rx.run(p.rx, &p.stop, p.log, "home agent tunnel receive", &p.drops, func(n int) {
		st := p.state.Load()
		for i := range n {
			rx.rb.meta(i, &meta)
			if meta.dst != p.addr {
				p.drops.unknown.Add(1)
				continue
			}
			bs := st.byCoA[meta.src]
			if len(bs) == 0 {
				p.drops.unknown.Add(1)
				continue
			}
			inner := rx.packet(i)
			if meta.trunc || inner == nil {
				p.drops.malformed.Add(1)
				continue
			}
			m, err := decapInner(inner, meta.tclass)
			if err != nil {
				p.drops.malformed.Add(1)
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
				p.drops.spoofed.Add(1)
				continue
			}
			if !rx.wr.add(p.dev, rx.bufs[i][:virtioNetHdrLen+m], p.cfg.MTU) {
				p.drops.malformed.Add(1)
				continue
			}
			k, ports := innerFlow(inner[:m], true)
			p.flows.learn(&k, ports, b.b.BID)
			b.ctr.rxPackets.Add(1)
			b.ctr.rxBytes.Add(uint64(m))
		}
	})
}

// Stats returns a snapshot of the counters of the current bindings.
func (p *HAPlane) Stats() HAStats { return p.stats() }

// Close removes the routes and the device and stops the loops.
func (p *HAPlane) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.setRoutes(nil)
	p.closeAll()
	p.wg.Wait()
	return err
}
