// Package relay is the forwarding loop the home agent and the
// correspondent share: a TUN device that the routes of home addresses point
// into, a raw socket that sends what arrives there to a binding, and the
// flow memory that picks the binding.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/tunio"
)

// Relay is what the home agent's and the correspondent's planes
// share: a TUN device that the routes of home addresses (and of a mobile
// router's prefixes) point into, a raw socket that sends what the kernel
// routes there, a socket that receives for it, the packet loops' view of
// the bindings (S, replaced whole by SetBindings), the bindings' counters
// and the flow memory. What the loops do to a packet is each plane's own.
type Relay[S any] struct {
	Log   *slog.Logger
	Run   *tunio.NSRunner
	Nl    *netlink.Handle
	Dev   *tunio.TunDevice
	tx    *tunio.RawSocket
	Rx    *tunio.RawSocket
	table int

	Mu     sync.Mutex // serializes SetBindings and Close
	Closed bool
	routed map[netip.Prefix]bool
	ctrs   map[dataplane.BindingKey]*tunio.TunnelCounters

	State atomic.Pointer[S]
	Flows *flowMemory
	Drops tunio.DropCounters
	Stop  atomic.Bool
	Wg    sync.WaitGroup
}

// Init starts the thread that stays in the calling thread's namespace;
// empty is the state without bindings.
func (p *Relay[S]) Init(log *slog.Logger, table int, empty *S) error {
	run, err := tunio.NewNSRunner()
	if err != nil {
		return err
	}
	p.Log, p.Run, p.table = log, run, table
	p.State.Store(empty)
	p.routed, p.ctrs, p.Flows = map[netip.Prefix]bool{}, map[dataplane.BindingKey]*tunio.TunnelCounters{}, NewFlowMemory()
	return nil
}

// Open makes, on the namespace's thread, the netlink handle, the device,
// the sending socket and, with openRx, the receiving socket. What it made
// is closeAll's to close, also on error.
func (p *Relay[S]) Open(device string, mtu int, offload bool, mark uint32, openRx func() (*tunio.RawSocket, error)) error {
	return p.Run.Do(func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("dataplane: netlink: %w", err)
		}
		p.Nl = h
		if p.Dev, err = tunio.OpenConfiguredTUN(h, device, mtu, offload); err != nil {
			return err
		}
		if p.tx, err = tunio.NewRawSocket(unix.IPPROTO_RAW, mark, ""); err != nil {
			return err
		}
		p.Rx, err = openRx()
		return err
	})
}

// CloseAll closes the device (its routes go with it) and the sockets,
// which ends the packet loops, then the netlink handle and the thread.
func (p *Relay[S]) CloseAll() {
	p.Stop.Store(true)
	if p.Dev != nil {
		p.Dev.Close()
	}
	if p.tx != nil {
		p.tx.Close()
	}
	if p.Rx != nil {
		p.Rx.Close()
	}
	if p.Nl != nil {
		p.Nl.Close()
	}
	p.Run.Close()
}

// SetBindings makes the plane's bindings want (level-triggered): build
// indexes them for the packet loops, keeping the counters in old of those
// that stay, and names the destinations to route into the device.
func SetBindings[S, B any](p *Relay[S], ctx context.Context, want []B,
	build func(want []B, old map[dataplane.BindingKey]*tunio.TunnelCounters) (*S, map[dataplane.BindingKey]*tunio.TunnelCounters, map[netip.Prefix]bool)) error {
	p.Mu.Lock()
	defer p.Mu.Unlock()
	if err := dataplane.CheckOpen(ctx, p.Closed); err != nil {
		return err
	}
	st, ctrs, dsts := build(want, p.ctrs)
	p.ctrs = ctrs
	p.State.Store(st) // before the new routes: see setRoutes
	return p.SetRoutes(dsts)
}

// SetRoutes routes exactly dsts into the device. setBindings publishes the
// packet loops' state first, so that no packet is routed in that the loops
// cannot place; one routed in after its bindings went is dropped (home
// agent) or sent on the normal way (correspondent).
func (p *Relay[S]) SetRoutes(dsts map[netip.Prefix]bool) error {
	return p.Run.Do(func() error {
		var errs []error
		for dst := range dsts {
			if !p.routed[dst] {
				if err := p.Nl.RouteReplace(p.route(dst)); err != nil {
					errs = append(errs, fmt.Errorf("route %s dev %s table %d: %w", dst, p.Dev.Name, p.table, err))
					continue
				}
				p.routed[dst] = true
			}
		}
		for dst := range p.routed {
			if !dsts[dst] {
				if err := p.Nl.RouteDel(p.route(dst)); err != nil && !errors.Is(err, unix.ESRCH) {
					errs = append(errs, fmt.Errorf("route %s dev %s: delete: %w", dst, p.Dev.Name, err))
				}
				delete(p.routed, dst)
			}
		}
		return errors.Join(errs...)
	})
}

func (p *Relay[S]) route(dst netip.Prefix) *netlink.Route {
	return &netlink.Route{
		Family:    netlink.FAMILY_V6,
		Dst:       &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 128)},
		LinkIndex: p.Dev.Index,
		Table:     p.table,
	}
}

func (p *Relay[S]) Stats() dataplane.BindingStats {
	p.Mu.Lock()
	defer p.Mu.Unlock()
	st := dataplane.BindingStats{Bindings: make(map[dataplane.BindingKey]dataplane.Counters, len(p.ctrs)), Drops: p.Drops.Snapshot()}
	for k, c := range p.ctrs {
		st.Bindings[k] = c.Snapshot()
	}
	return st
}

// TxLoop is both planes' sending loop: TUN -> place -> raw socket. place
// gets each IPv6 packet the kernel routes into the device (at
// buf[headroom:], size octets; larger than the MTU when too big) with the
// bindings as they were when the batch was read, and queues it on tp or
// counts it dropped; overhead is what it adds to a packet.
func (p *Relay[S]) TxLoop(mtu, overhead int, what string, place func(tp *TxPipe, st *S, buf []byte, size int)) {
	defer p.Wg.Done()
	tp := newTxPipe(p.Dev, mtu)
	readMsg, sendMsg := what+" read", what+" send" // not per batch: no allocation
	for {
		n, err := tp.rd.Read(tp.slots, mtu)
		if err != nil {
			if !tp.lim.Retry(&p.Stop, p.Log, readMsg, err) {
				return
			}
			continue
		}
		st := p.State.Load()
		for i := range n {
			buf, size, ok := tp.rd.Packet(i)
			if !ok {
				p.Drops.Malformed.Add(1)
				continue
			}
			place(tp, st, buf, size)
		}
		tp.send(p.tx, overhead, p.Log, sendMsg)
	}
}

// TxPipe is the sending loop's machinery of both planes: packets read from
// the device into slots with headroom, each sent to its own address on one
// raw socket in a batch and counted on its binding's counters.
type TxPipe struct {
	rd    *tunio.TunReader
	mtu   int
	slots [][]byte
	ptb   []byte
	wb    *tunio.MsgBatch
	ctrs  []*tunio.TunnelCounters // message i's binding's; nil: not counted
	k     int                     // messages queued
	lim   tunio.ErrLimiter
}

func newTxPipe(dev *tunio.TunDevice, mtu int) *TxPipe {
	return &TxPipe{
		rd:    tunio.NewTunReader(dev),
		mtu:   mtu,
		slots: packet.MakeSlots(packet.BatchSize, packet.Headroom+mtu+1),
		ptb:   make([]byte, packet.VirtioNetHdrLen+dataplane.MinMTU),
		wb:    tunio.NewMsgBatch(packet.BatchSize, true, false),
		ctrs:  make([]*tunio.TunnelCounters, packet.BatchSize),
	}
}

// TooBig answers the packet at buf[headroom:], size octets, with a Packet
// Too Big from src.
func (t *TxPipe) TooBig(drops *tunio.DropCounters, buf []byte, size int, src *[16]byte) {
	pkt := buf[packet.Headroom:]
	tunio.SendPTB(t.rd.Dev, drops, t.ptb, pkt[:min(size, len(pkt))], t.mtu, src)
}

// Add queues b, a packet in one of the slots, to dst; ctr (nil: none)
// counts it.
func (t *TxPipe) Add(b []byte, dst *[16]byte, ctr *tunio.TunnelCounters) {
	t.wb.Set(t.k, b)
	t.wb.SetAddr(t.k, dst)
	t.ctrs[t.k] = ctr
	t.k++
}

// send sends what add queued on s and counts it: each packet that went
// with all but overhead of its octets (what the plane added), an error for
// each that did not.
func (t *TxPipe) send(s *tunio.RawSocket, overhead int, log *slog.Logger, what string) {
	k := t.k
	if k == 0 {
		return
	}
	t.k = 0
	_, err := s.Send(t.wb, k)
	failed := s.Failed // ascending
	for i, c := range t.ctrs[:k] {
		bad := len(failed) > 0 && failed[0] == i
		if bad {
			failed = failed[1:]
		}
		switch {
		case c == nil:
		case bad:
			c.TxErrors.Add(1)
		default:
			c.TxPackets.Add(1)
			c.TxBytes.Add(uint64(len(t.wb.Bufs[i]) - overhead))
		}
	}
	if err != nil && t.lim.Ok() {
		log.Warn(what, "err", err)
	}
	clear(t.ctrs[:k])
}
