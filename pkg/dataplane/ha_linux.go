package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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
	cfg  HAConfig
	log  *slog.Logger
	run  *nsRunner
	nl   *netlink.Handle
	dev  *tunDevice
	tx   *rawSocket
	rx   *rawSocket
	addr [16]byte

	mu     sync.Mutex // serializes SetBindings and Close
	closed bool
	routed map[netip.Prefix]bool // HoA/128s and mobile network prefixes
	ctrs   map[HAKey]*tunnelCounters

	state atomic.Pointer[haState]
	flows *flowMemory
	drops dropCounters
	stop  atomic.Bool
	wg    sync.WaitGroup
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

func findBID(bs []*haBinding, bid uint16) *haBinding {
	for _, b := range bs {
		if b.b.BID == bid {
			return b
		}
	}
	return nil
}

// NewHAPlane creates the TUN device and sockets in the network namespace of
// the calling thread and starts the two packet loops.
func NewHAPlane(cfg *HAConfig) (*HAPlane, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	run, err := newNSRunner()
	if err != nil {
		return nil, err
	}
	p := &HAPlane{
		cfg: c, log: c.Logger.With("dataplane", "ha"), run: run, addr: c.Address.As16(),
		routed: map[netip.Prefix]bool{}, ctrs: map[HAKey]*tunnelCounters{}, flows: newFlowMemory(),
	}
	p.state.Store(&haState{byHoA: map[[16]byte][]*haBinding{}, byCoA: map[[16]byte][]*haBinding{}})
	err = run.do(func() error {
		if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding"); err == nil && strings.TrimSpace(string(b)) != "1" {
			p.log.Warn("IPv6 forwarding is off: packets from mobile nodes will not be routed on")
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("dataplane: netlink: %w", err)
		}
		p.nl = h
		if p.dev, err = openConfiguredTUN(h, c.Device, c.MTU, !c.NoOffload); err != nil {
			return err
		}
		if p.tx, err = newRawSocket(unix.IPPROTO_RAW, c.Mark, ""); err != nil {
			return err
		}
		p.rx, err = newRawSocket(protoIPv6, 0, "")
		return err
	})
	if err != nil {
		p.closeAll()
		return nil, err
	}
	p.wg.Add(2)
	go p.txLoop()
	go p.rxLoop()
	return p, nil
}

func (p *HAPlane) closeAll() {
	p.stop.Store(true)
	if p.dev != nil {
		p.dev.close()
	}
	if p.tx != nil {
		p.tx.close()
	}
	if p.rx != nil {
		p.rx.close()
	}
	if p.nl != nil {
		p.nl.Close()
	}
	p.run.close()
}

// SetBindings makes the tunnelled set exactly bs (level-triggered): routes
// for home addresses that gained their first binding, none for those that
// lost their last, and the lookup tables the packet loops use.
func (p *HAPlane) SetBindings(ctx context.Context, bs []HABinding) error {
	want, err := checkHABindings(bs)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	st, ctrs, homes := buildHAState(want, p.ctrs)
	p.ctrs = ctrs
	// New routes only once the tables know the bindings; old ones go
	// after, so no packet is routed in that the loops cannot place.
	p.state.Store(st)
	return p.run.do(func() error {
		var errs []error
		for dst := range homes {
			if !p.routed[dst] {
				if err := p.nl.RouteReplace(p.route(dst)); err != nil {
					errs = append(errs, fmt.Errorf("route %s dev %s: %w", dst, p.dev.name, err))
					continue
				}
				p.routed[dst] = true
			}
		}
		for dst := range p.routed {
			if !homes[dst] {
				if err := p.nl.RouteDel(p.route(dst)); err != nil && !errors.Is(err, unix.ESRCH) {
					errs = append(errs, fmt.Errorf("route %s dev %s: delete: %w", dst, p.dev.name, err))
				}
				delete(p.routed, dst)
			}
		}
		return errors.Join(errs...)
	})
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
		k := HAKey{b.HoA, b.BID}
		c := old[k]
		if c == nil {
			c = &tunnelCounters{}
		}
		ctrs[k] = c
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
		slices.SortStableFunc(l, func(a, b *haBinding) int {
			if a.b.Priority != b.b.Priority {
				return int(b.b.Priority) - int(a.b.Priority)
			}
			return int(a.b.BID) - int(b.b.BID)
		})
	}
	return st, ctrs, homes
}

func (p *HAPlane) route(dst netip.Prefix) *netlink.Route {
	return &netlink.Route{
		Family:    netlink.FAMILY_V6,
		Dst:       &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 128)},
		LinkIndex: p.dev.index,
		Table:     p.cfg.Table,
	}
}

// pick chooses the binding for a packet to a home address.
func (p *HAPlane) pick(bs []*haBinding, pkt []byte) *haBinding {
	k, ports := innerFlow(pkt, false)
	fbid, fok, pbid, pok := p.flows.recall(&k, ports)
	if fok {
		if b := findBID(bs, fbid); b != nil {
			return b
		}
	}
	if pok {
		if b := findBID(bs, pbid); b != nil {
			return b
		}
	}
	return bs[0]
}

// txLoop: TUN -> pick a binding -> encapsulate -> raw socket.
func (p *HAPlane) txLoop() {
	defer p.wg.Done()
	var (
		lim   errLimiter
		rd    = newTunReader(p.dev)
		wb    = newMsgBatch(batchSize, true, false)
		slots = makeSlots(batchSize, headroom+p.cfg.MTU+1)
		ptb   = make([]byte, virtioNetHdrLen+minMTU)
		sent  = make([]*haBinding, batchSize)
	)
	for {
		n, err := rd.read(slots, p.cfg.MTU)
		if err != nil {
			if p.stop.Load() {
				return
			}
			if lim.ok() {
				p.log.Warn("home agent tunnel read", "err", err)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		st := p.state.Load()
		k := 0
		for i := range n {
			size, buf := rd.sizes[i], rd.pkts[i]
			pkt := buf[headroom:]
			if size < ipv6HeaderLen || pkt[0]>>4 != 6 {
				p.drops.malformed.Add(1)
				continue
			}
			bs := st.bindings([16]byte(pkt[24:40]))
			if len(bs) == 0 {
				p.drops.noBinding.Add(1)
				continue
			}
			if size > p.cfg.MTU {
				p.drops.tooBig.Add(1)
				m := buildPTB(ptb[virtioNetHdrLen:], pkt[:min(size, len(pkt))], p.cfg.MTU, &p.addr)
				out := ptb[virtioNetHdrLen : virtioNetHdrLen+m]
				if p.dev.vnet {
					clear(ptb[:virtioNetHdrLen])
					out = ptb[:virtioNetHdrLen+m]
				}
				p.dev.write(out)
				continue
			}
			b := p.pick(bs, pkt[:size])
			m, err := encap(buf[:headroom+size], &p.addr, &b.coa)
			if err != nil {
				p.drops.malformed.Add(1)
				continue
			}
			wb.set(k, buf[:m])
			wb.setAddr(k, &b.coa)
			sent[k] = b
			k++
		}
		if k == 0 {
			continue
		}
		_, err = p.tx.send(wb, k)
		for i := range k {
			sent[i].ctr.txPackets.Add(1)
			sent[i].ctr.txBytes.Add(uint64(len(wb.bufs[i]) - headroom))
		}
		for _, i := range p.tx.failed {
			sent[i].ctr.txPackets.Add(^uint64(0))
			sent[i].ctr.txBytes.Add(^uint64(len(wb.bufs[i]) - headroom - 1))
			sent[i].ctr.txErrors.Add(1)
		}
		if err != nil && lim.ok() {
			p.log.Warn("home agent tunnel send", "err", err)
		}
		clear(sent[:k])
	}
}

// rxLoop: raw socket -> check -> remember the flow -> TUN.
func (p *HAPlane) rxLoop() {
	defer p.wg.Done()
	var (
		lim  errLimiter
		rb   = newMsgBatch(rxBatch, true, true)
		bufs = makeSlots(rxBatch, rxSlot)
		wr   = newTunWriter()
		meta rxMeta
	)
	for i := range bufs {
		rb.set(i, bufs[i][virtioNetHdrLen:])
	}
	for {
		n, err := p.rx.recv(rb)
		if err != nil {
			if p.stop.Load() {
				return
			}
			if lim.ok() {
				p.log.Warn("home agent tunnel receive", "err", err)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		st := p.state.Load()
		for i := range n {
			rb.meta(i, &meta)
			if meta.dst != p.addr {
				p.drops.unknown.Add(1)
				continue
			}
			bs := st.byCoA[meta.src]
			if len(bs) == 0 {
				p.drops.unknown.Add(1)
				continue
			}
			if meta.trunc {
				p.drops.malformed.Add(1)
				continue
			}
			inner := bufs[i][virtioNetHdrLen : virtioNetHdrLen+int(rb.hdrs[i].Len)]
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
			if !wr.add(p.dev, bufs[i][:virtioNetHdrLen+m], p.cfg.MTU) {
				p.drops.malformed.Add(1)
				continue
			}
			k, ports := innerFlow(inner[:m], true)
			p.flows.learn(&k, ports, b.b.BID)
			b.ctr.rxPackets.Add(1)
			b.ctr.rxBytes.Add(uint64(m))
		}
		if errs := wr.flush(); errs > 0 {
			p.drops.writeErr.Add(uint64(errs))
		}
	}
}

// Stats returns a snapshot of the counters of the current bindings.
func (p *HAPlane) Stats() HAStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := HAStats{Bindings: make(map[HAKey]Counters, len(p.ctrs)), Drops: p.drops.snapshot()}
	for k, c := range p.ctrs {
		st.Bindings[k] = c.snapshot()
	}
	return st
}

// Close removes the routes and the device and stops the loops.
func (p *HAPlane) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.run.do(func() error {
		var errs []error
		for hoa := range p.routed {
			if err := p.nl.RouteDel(p.route(hoa)); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
	p.closeAll()
	p.wg.Wait()
	return err
}
