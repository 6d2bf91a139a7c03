package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// CNPlane is a correspondent node's route-optimised data path (RFC 6275
// 9.3; draft 5.2 and 6.1: per BID). Every home address with bindings has a
// route HoA/128 in Table into the TUN device (Device), looked up only by
// this node's own packets (ip rule iif lo), so a home agent that is also a
// correspondent keeps forwarding others' packets through its tunnels. One
// goroutine reads what the kernel routes there and sends it with a type 2
// routing header to the care-of address of the binding the reverse flow
// (or peer) last arrived on, else to the one of highest priority. Packets
// that must not be route-optimised (Mobility Headers such as the HoT, which
// goes to the home address through the home agent; packets with routing or
// destination options headers of their own) and packets for a home address
// whose bindings just went are sent on unchanged with Mark, which makes
// them skip Table (ip rule fwmark goto): the normal way, through the home
// network.
//
// Receiving: a kernel without CONFIG_IPV6_MIP6 drops packets with a Home
// Address option (and answers with a parameter problem, which pkg/mhsock's
// nftables table drops), so an AF_PACKET socket takes IPv6 packets with a
// Destination Options header and no Mobility Header behind it. A packet
// with a Home Address option whose home address has a binding at the
// packet's source, sent to the address that binding was registered with,
// has the home address put in as its source and the option removed, and
// goes into the TUN device: the stack sees a packet from the home address.
// Without such a binding the packet is dropped and BindingError asked for a
// Binding Error status 1.
type CNPlane struct {
	cfg CNConfig
	log *slog.Logger
	run *nsRunner
	nl  *netlink.Handle
	dev *tunDevice
	tx  *rawSocket
	rx  *rawSocket

	mu     sync.Mutex // serializes SetBindings and Close
	closed bool
	routed map[netip.Addr]bool
	ctrs   map[HAKey]*tunnelCounters

	state atomic.Pointer[cnState]
	flows *flowMemory
	drops dropCounters
	stop  atomic.Bool
	wg    sync.WaitGroup

	beq chan beRequest
	bew sync.WaitGroup
}

type cnState struct {
	byHoA map[[16]byte][]*cnBind // best first
	byKey map[cnKey]*cnBind
}

type cnKey struct{ hoa, coa [16]byte }

type cnBind struct {
	b               CNBinding
	hoa, coa, local [16]byte
	ctr             *tunnelCounters
}

type beRequest struct{ src, dst, hoa [16]byte }

// beRate bounds the Binding Error requests (they answer unauthenticated
// packets).
const beRate = 10

// NewCNPlane creates the device, sockets and ip rules in the network
// namespace of the calling thread and starts the packet loops.
func NewCNPlane(cfg *CNConfig) (*CNPlane, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	run, err := newNSRunner()
	if err != nil {
		return nil, err
	}
	p := &CNPlane{
		cfg: c, log: c.Logger.With("dataplane", "cn"), run: run,
		routed: map[netip.Addr]bool{}, ctrs: map[HAKey]*tunnelCounters{}, flows: newFlowMemory(),
		beq: make(chan beRequest, 16),
	}
	p.state.Store(&cnState{byHoA: map[[16]byte][]*cnBind{}, byKey: map[cnKey]*cnBind{}})
	err = run.do(func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("dataplane: netlink: %w", err)
		}
		p.nl = h
		if err := p.setRules(true); err != nil {
			return err
		}
		if p.dev, err = openConfiguredTUN(h, c.Device, c.MTU, !c.NoOffload); err != nil {
			return err
		}
		if p.tx, err = newRawSocket(unix.IPPROTO_RAW, c.Mark, ""); err != nil {
			return err
		}
		p.rx, err = newPacketSocket(haoFilter())
		return err
	})
	if err != nil {
		p.closeAll()
		return nil, err
	}
	p.wg.Add(2)
	go p.txLoop()
	go p.rxLoop()
	p.bew.Add(1)
	go p.beLoop()
	return p, nil
}

// rules are the plane's three ip rules: marked packets jump over the
// lookup of Table, which only this node's own packets make.
func (p *CNPlane) rules() []*netlink.Rule {
	pr := p.cfg.RulePriority
	mask := p.cfg.Mark
	skip := netlink.NewRule()
	skip.Family, skip.Priority, skip.Mark, skip.Mask, skip.Goto = unix.AF_INET6, pr, p.cfg.Mark, &mask, pr+2
	look := netlink.NewRule()
	look.Family, look.Priority, look.IifName, look.Table = unix.AF_INET6, pr+1, "lo", p.cfg.Table
	nop := netlink.NewRule()
	nop.Family, nop.Priority, nop.Type = unix.AF_INET6, pr+2, 3 // FR_ACT_NOP: the goto's target
	return []*netlink.Rule{nop, look, skip}
}

// setRules removes the rules at our priorities (a crashed run's) and, with
// add, puts ours in.
func (p *CNPlane) setRules(add bool) error {
	pr := p.cfg.RulePriority
	old, err := p.nl.RuleList(unix.AF_INET6)
	if err != nil {
		return fmt.Errorf("ip rules: %w", err)
	}
	var errs []error
	for i := range old {
		if r := &old[i]; r.Priority >= pr && r.Priority <= pr+2 {
			if err := p.nl.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("ip rule %v: delete: %w", r, err))
			}
		}
	}
	if add {
		for _, r := range p.rules() {
			if err := p.nl.RuleAdd(r); err != nil {
				errs = append(errs, fmt.Errorf("ip rule %v: %w", r, err))
			}
		}
	}
	return errors.Join(errs...)
}

// closeAll closes the device (its routes go with it) and the sockets,
// which ends the packet loops, and removes the rules.
func (p *CNPlane) closeAll() {
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
		if err := p.run.do(func() error { return p.setRules(false) }); err != nil {
			p.log.Warn("correspondent ip rules", "err", err)
		}
		p.nl.Close()
	}
	p.run.close()
}

// SetBindings makes the route-optimised set exactly bs (level-triggered).
func (p *CNPlane) SetBindings(ctx context.Context, bs []CNBinding) error {
	want, err := checkCNBindings(bs)
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
	st := &cnState{byHoA: map[[16]byte][]*cnBind{}, byKey: map[cnKey]*cnBind{}}
	ctrs := map[HAKey]*tunnelCounters{}
	homes := map[netip.Addr]bool{}
	for _, b := range want {
		k := HAKey{b.HoA, b.BID}
		c := p.ctrs[k]
		if c == nil {
			c = &tunnelCounters{}
		}
		ctrs[k] = c
		cb := &cnBind{b: b, hoa: b.HoA.As16(), coa: b.CoA.As16(), local: b.Local.As16(), ctr: c}
		st.byHoA[cb.hoa] = append(st.byHoA[cb.hoa], cb)
		if _, dup := st.byKey[cnKey{cb.hoa, cb.coa}]; !dup {
			st.byKey[cnKey{cb.hoa, cb.coa}] = cb
		}
		homes[b.HoA] = true
	}
	for _, l := range st.byHoA {
		slices.SortStableFunc(l, func(a, b *cnBind) int {
			if a.b.Priority != b.b.Priority {
				return int(b.b.Priority) - int(a.b.Priority)
			}
			return int(a.b.BID) - int(b.b.BID)
		})
	}
	p.ctrs = ctrs
	// As on the home agent: tables first, then new routes; old routes
	// go, and a packet routed in meanwhile is sent on the normal way.
	p.state.Store(st)
	return p.run.do(func() error {
		var errs []error
		for hoa := range homes {
			if !p.routed[hoa] {
				if err := p.nl.RouteReplace(p.route(hoa)); err != nil {
					errs = append(errs, fmt.Errorf("route %s dev %s table %d: %w", hoa, p.dev.name, p.cfg.Table, err))
					continue
				}
				p.routed[hoa] = true
			}
		}
		for hoa := range p.routed {
			if !homes[hoa] {
				if err := p.nl.RouteDel(p.route(hoa)); err != nil && !errors.Is(err, unix.ESRCH) {
					errs = append(errs, fmt.Errorf("route %s dev %s: delete: %w", hoa, p.dev.name, err))
				}
				delete(p.routed, hoa)
			}
		}
		return errors.Join(errs...)
	})
}

func (p *CNPlane) route(hoa netip.Addr) *netlink.Route {
	return &netlink.Route{
		Family:    netlink.FAMILY_V6,
		Dst:       &net.IPNet{IP: hoa.AsSlice(), Mask: net.CIDRMask(128, 128)},
		LinkIndex: p.dev.index,
		Table:     p.cfg.Table,
	}
}

// pick chooses the binding for a packet to a home address, as the home
// agent does: the flow's, the peer's, else the best.
func (p *CNPlane) pick(bs []*cnBind, pkt []byte) *cnBind {
	k, ports := innerFlow(pkt, false)
	fbid, fok, pbid, pok := p.flows.recall(&k, ports)
	for _, ok := range [2]struct {
		ok  bool
		bid uint16
	}{{fok, fbid}, {pok, pbid}} {
		if ok.ok {
			for _, b := range bs {
				if b.b.BID == ok.bid {
					return b
				}
			}
		}
	}
	return bs[0]
}

// txLoop: TUN -> type 2 routing header -> raw socket.
func (p *CNPlane) txLoop() {
	defer p.wg.Done()
	var (
		lim   errLimiter
		rd    = newTunReader(p.dev)
		wb    = newMsgBatch(batchSize, true, false)
		slots = makeSlots(batchSize, headroom+p.cfg.MTU+1)
		ptb   = make([]byte, virtioNetHdrLen+minMTU)
		sent  = make([]*cnBind, batchSize)
	)
	for {
		n, err := rd.read(slots, p.cfg.MTU)
		if err != nil {
			if p.stop.Load() {
				return
			}
			if lim.ok() {
				p.log.Warn("correspondent read", "err", err)
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
			dst := (*[16]byte)(pkt[24:40])
			if size > p.cfg.MTU {
				p.drops.tooBig.Add(1)
				m := buildPTB(ptb[virtioNetHdrLen:], pkt[:min(size, len(pkt))], p.cfg.MTU, dst)
				out := ptb[virtioNetHdrLen : virtioNetHdrLen+m]
				if p.dev.vnet {
					clear(ptb[:virtioNetHdrLen])
					out = ptb[:virtioNetHdrLen+m]
				}
				p.dev.write(out)
				continue
			}
			sent[k] = nil
			start, length := headroom, size
			if bs := st.byHoA[*dst]; len(bs) > 0 {
				b := p.pick(bs, pkt[:size])
				if ns, nn, err := insertRH2(buf, headroom, size, &b.coa); err == nil {
					start, length, sent[k] = ns, nn, b
				}
			}
			// Without a binding (or for signaling) the packet goes
			// unchanged, marked: the normal way.
			wb.set(k, buf[start:start+length])
			wb.setAddr(k, (*[16]byte)(buf[start+24:start+40]))
			k++
		}
		if k == 0 {
			continue
		}
		_, err = p.tx.send(wb, k)
		failed := p.tx.failed
		for i := range k {
			b := sent[i]
			if b == nil {
				continue
			}
			if slices.Contains(failed, i) {
				b.ctr.txErrors.Add(1)
				continue
			}
			b.ctr.txPackets.Add(1)
			b.ctr.txBytes.Add(uint64(len(wb.bufs[i]) - roExtLen))
		}
		if err != nil && lim.ok() {
			p.log.Warn("correspondent send", "err", err)
		}
		clear(sent[:k])
	}
}

// rxLoop: AF_PACKET -> Home Address option checked and removed -> TUN.
func (p *CNPlane) rxLoop() {
	defer p.wg.Done()
	var (
		lim    errLimiter
		rb     = newMsgBatch(rxBatch, false, false)
		bufs   = makeSlots(rxBatch, roRxSlot)
		wr     = newTunWriter()
		loc    haoLoc
		tokens = float64(beRate)
		last   = time.Now()
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
				p.log.Warn("correspondent receive", "err", err)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		st := p.state.Load()
		for i := range n {
			size := int(rb.hdrs[i].Len)
			if rb.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 || virtioNetHdrLen+size > len(bufs[i]) {
				p.drops.malformed.Add(1)
				continue
			}
			pkt := bufs[i][virtioNetHdrLen : virtioNetHdrLen+size]
			if err := findHAO(pkt, &loc); err != nil {
				if !errors.Is(err, errNoHAO) {
					p.drops.malformed.Add(1)
				}
				continue // other destination options are the kernel's
			}
			hoa, src, dst := loc.hoa(pkt), [16]byte(pkt[8:24]), [16]byte(pkt[24:40])
			b := st.byKey[cnKey{hoa, src}]
			if b == nil || b.local != dst {
				p.drops.noBinding.Add(1)
				if now := time.Now(); p.cfg.BindingError != nil {
					tokens = min(tokens+now.Sub(last).Seconds()*beRate, beRate)
					last = now
					if tokens >= 1 {
						select {
						case p.beq <- beRequest{src, dst, hoa}:
							tokens--
						default:
						}
					}
				}
				continue
			}
			ns, nn := stripHAO(bufs[i], virtioNetHdrLen, &loc)
			if !wr.add(p.dev, bufs[i][ns-virtioNetHdrLen:ns+nn], maxPacket) {
				p.drops.malformed.Add(1)
				continue
			}
			k, ports := innerFlow(bufs[i][ns:ns+nn], true)
			p.flows.learn(&k, ports, b.b.BID)
			b.ctr.rxPackets.Add(1)
			b.ctr.rxBytes.Add(uint64(nn))
		}
		if errs := wr.flush(); errs > 0 {
			p.drops.writeErr.Add(uint64(errs))
		}
	}
}

// beLoop asks for the Binding Errors, for packets sent to an address of
// this node (a Home Address option on a packet passing through is not
// ours to answer).
func (p *CNPlane) beLoop() {
	defer p.bew.Done()
	for r := range p.beq {
		dst := netip.AddrFrom16(r.dst)
		local := false
		_ = p.run.do(func() error {
			rs, err := p.nl.RouteGet(dst.AsSlice())
			local = err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL
			return nil
		})
		if local {
			p.cfg.BindingError(netip.AddrFrom16(r.src), dst, netip.AddrFrom16(r.hoa))
		}
	}
}

// Stats returns a snapshot of the counters of the current bindings (Tx:
// sent with a type 2 routing header; Rx: received with a Home Address
// option) and the drops.
func (p *CNPlane) Stats() HAStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := HAStats{Bindings: make(map[HAKey]Counters, len(p.ctrs)), Drops: p.drops.snapshot()}
	for k, c := range p.ctrs {
		st.Bindings[k] = c.snapshot()
	}
	return st
}

// Close removes the routes, rules and device and stops the loops.
func (p *CNPlane) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.stop.Store(true)
	p.dev.close()
	p.rx.close()
	p.wg.Wait()
	close(p.beq) // only rxLoop sends on it
	p.bew.Wait()
	p.closeAll()
	return nil
}
