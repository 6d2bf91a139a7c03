package correspondent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/relay"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/routeopt"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/tunio"
)

// Forwarder is a correspondent node's route-optimised data path (RFC 6275
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
type Forwarder struct {
	relay relay.Relay[cnState] // routes: HoA/128s
	cfg   Config

	beq chan beRequest
	bew sync.WaitGroup
}

type cnState struct {
	byHoA map[[16]byte][]*cnBind // best first
	byKey map[cnKey]*cnBind
}

type cnKey struct{ hoa, coa [16]byte }

type cnBind struct {
	b               Binding
	hoa, coa, local [16]byte
	ctr             *tunio.TunnelCounters
}

func (b *cnBind) Rank() (uint8, uint16) { return b.b.Priority, b.b.BID }

type beRequest struct{ src, dst, hoa [16]byte }

// beRate bounds the Binding Error requests (they answer unauthenticated
// packets).
const beRate = 10

// New creates the device, sockets and ip rules in the network
// namespace of the calling thread and starts the packet loops.
func New(cfg *Config) (*Forwarder, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Forwarder{cfg: c, beq: make(chan beRequest, 16)}
	empty := &cnState{byHoA: map[[16]byte][]*cnBind{}, byKey: map[cnKey]*cnBind{}}
	if err := p.relay.Init(c.Logger.With("dataplane", "cn"), c.Table, empty); err != nil {
		return nil, err
	}
	err = p.relay.Open(c.Device, c.MTU, !c.NoOffload, c.Mark, func() (*tunio.RawSocket, error) {
		if err := p.setRules(true); err != nil {
			return nil, err
		}
		return tunio.NewPacketSocket(routeopt.HAOFilter())
	})
	if err != nil {
		p.closeAll()
		return nil, err
	}
	p.relay.Wg.Add(2)
	go p.relay.TxLoop(c.MTU, routeopt.ExtLen, "correspondent", p.placeTx)
	go p.rxLoop()
	p.bew.Add(1)
	go p.beLoop()
	return p, nil
}

// rules are the plane's three ip rules: marked packets jump over the
// lookup of Table, which only this node's own packets make.
func (p *Forwarder) rules() []*netlink.Rule {
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
func (p *Forwarder) setRules(add bool) error {
	pr := p.cfg.RulePriority
	old, err := p.relay.Nl.RuleList(unix.AF_INET6)
	if err != nil {
		return fmt.Errorf("ip rules: %w", err)
	}
	var errs []error
	for i := range old {
		if r := &old[i]; r.Priority >= pr && r.Priority <= pr+2 {
			if err := p.relay.Nl.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("ip rule %v: delete: %w", r, err))
			}
		}
	}
	if add {
		for _, r := range p.rules() {
			if err := p.relay.Nl.RuleAdd(r); err != nil {
				errs = append(errs, fmt.Errorf("ip rule %v: %w", r, err))
			}
		}
	}
	return errors.Join(errs...)
}

// closeAll removes the rules and closes what Relay.CloseAll does.
func (p *Forwarder) closeAll() {
	if p.relay.Nl != nil {
		if err := p.relay.Run.Do(func() error { return p.setRules(false) }); err != nil {
			p.relay.Log.Warn("correspondent ip rules", "err", err)
		}
	}
	p.relay.CloseAll()
}

// SetBindings makes the route-optimised set exactly bs (level-triggered).
// A packet routed into the device after its home address's bindings went
// is sent on the normal way.
func (p *Forwarder) SetBindings(ctx context.Context, bs []Binding) error {
	want, err := checkBindings(bs)
	if err != nil {
		return err
	}
	return relay.SetBindings(&p.relay, ctx, want, buildCNState)
}

// buildCNState indexes checked bindings for the packet loops, as
// buildHAState does; homes are the home addresses (/128).
func buildCNState(want []Binding, old map[dataplane.BindingKey]*tunio.TunnelCounters) (*cnState, map[dataplane.BindingKey]*tunio.TunnelCounters, map[netip.Prefix]bool) {
	st := &cnState{byHoA: map[[16]byte][]*cnBind{}, byKey: map[cnKey]*cnBind{}}
	ctrs := map[dataplane.BindingKey]*tunio.TunnelCounters{}
	homes := map[netip.Prefix]bool{}
	for _, b := range want {
		c := tunio.CounterFor(ctrs, old, dataplane.BindingKey{HoA: b.HoA, BID: b.BID})
		cb := &cnBind{b: b, hoa: b.HoA.As16(), coa: b.CoA.As16(), local: b.Local.As16(), ctr: c}
		st.byHoA[cb.hoa] = append(st.byHoA[cb.hoa], cb)
		if _, dup := st.byKey[cnKey{cb.hoa, cb.coa}]; !dup {
			st.byKey[cnKey{cb.hoa, cb.coa}] = cb
		}
		homes[netip.PrefixFrom(b.HoA, 128)] = true
	}
	for _, l := range st.byHoA {
		relay.SortBest(l)
	}
	return st, ctrs, homes
}

// placeTx: type 2 routing header (see relay.txLoop).
func (p *Forwarder) placeTx(tp *relay.TxPipe, st *cnState, buf []byte, size int) {
	dst := (*[16]byte)(buf[packet.Headroom+24 : packet.Headroom+40])
	if size > p.cfg.MTU {
		tp.TooBig(&p.relay.Drops, buf, size, dst)
		return
	}
	start, length, ctr := packet.Headroom, size, (*tunio.TunnelCounters)(nil)
	if bs := st.byHoA[*dst]; len(bs) > 0 {
		b := relay.PickBinding(p.relay.Flows, bs, buf[packet.Headroom:packet.Headroom+size])
		if ns, nn, err := routeopt.InsertRH2(buf, packet.Headroom, size, &b.coa); err == nil {
			start, length, ctr = ns, nn, b.ctr
		}
	}
	// Without a binding (or for signaling) the packet goes unchanged,
	// marked, and uncounted: the normal way.
	tp.Add(buf[start:start+length], (*[16]byte)(buf[start+24:start+40]), ctr)
}

// rxLoop: AF_PACKET -> Home Address option checked and removed -> TUN.
func (p *Forwarder) rxLoop() {
	defer p.relay.Wg.Done()
	var (
		rx     = tunio.NewRxPipe(tunio.PacketSocketSlot, false, false)
		loc    routeopt.HAOLoc
		tokens = float64(beRate)
		last   = time.Now()
	)
	rx.Run(p.relay.Rx, &p.relay.Stop, p.relay.Log, "correspondent receive", &p.relay.Drops, func(n int) {
		st := p.relay.State.Load()
		for i := range n {
			pkt := rx.Packet(i)
			if pkt == nil {
				p.relay.Drops.Malformed.Add(1)
				continue
			}
			if err := routeopt.FindHAO(pkt, &loc); err != nil {
				if !errors.Is(err, routeopt.ErrNoHAO) {
					p.relay.Drops.Malformed.Add(1)
				}
				continue // other destination options are the kernel's
			}
			hoa, src, dst := loc.Hoa(pkt), [16]byte(pkt[8:24]), [16]byte(pkt[24:40])
			b := st.byKey[cnKey{hoa, src}]
			if b == nil || b.local != dst {
				p.relay.Drops.NoBinding.Add(1)
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
			buf := rx.Bufs[i]
			ns, nn := routeopt.StripHAO(buf, packet.VirtioNetHdrLen, &loc)
			if !rx.Wr.Add(p.relay.Dev, buf[ns-packet.VirtioNetHdrLen:ns+nn], dataplane.MaxPacket) {
				p.relay.Drops.Malformed.Add(1)
				continue
			}
			k, ports := relay.InnerFlow(buf[ns:ns+nn], true)
			p.relay.Flows.Learn(&k, ports, b.b.BID)
			b.ctr.RxPackets.Add(1)
			b.ctr.RxBytes.Add(uint64(nn))
		}
	})
}

// beLoop asks for the Binding Errors, for packets sent to an address of
// this node (a Home Address option on a packet passing through is not
// ours to answer).
func (p *Forwarder) beLoop() {
	defer p.bew.Done()
	for r := range p.beq {
		dst := netip.AddrFrom16(r.dst)
		local := false
		_ = p.relay.Run.Do(func() error {
			rs, err := p.relay.Nl.RouteGet(dst.AsSlice())
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
func (p *Forwarder) Stats() dataplane.BindingStats { return p.relay.Stats() }

// Close removes the routes, rules and device and stops the loops.
func (p *Forwarder) Close() error {
	p.relay.Mu.Lock()
	defer p.relay.Mu.Unlock()
	if p.relay.Closed {
		return nil
	}
	p.relay.Closed = true
	p.relay.Stop.Store(true)
	p.relay.Dev.Close()
	p.relay.Rx.Close()
	p.relay.Wg.Wait()
	close(p.beq) // only rxLoop sends on it
	p.bew.Wait()
	p.closeAll()
	return nil
}
