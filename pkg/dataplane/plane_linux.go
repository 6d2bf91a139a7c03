package dataplane

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
)

// bindingPlane is what the home agent's and the correspondent's planes
// share: a TUN device that the routes of home addresses (and of a mobile
// router's prefixes) point into, a raw socket that sends what the kernel
// routes there, a socket that receives for it, the packet loops' view of
// the bindings (S, replaced whole by SetBindings), the bindings' counters
// and the flow memory. What the loops do to a packet is each plane's own.
type bindingPlane[S any] struct {
	log   *slog.Logger
	run   *nsRunner
	nl    *netlink.Handle
	dev   *tunDevice
	tx    *rawSocket
	rx    *rawSocket
	table int

	mu     sync.Mutex // serializes SetBindings and Close
	closed bool
	routed map[netip.Prefix]bool
	ctrs   map[HAKey]*tunnelCounters

	state atomic.Pointer[S]
	flows *flowMemory
	drops dropCounters
	stop  atomic.Bool
	wg    sync.WaitGroup
}

// init starts the thread that stays in the calling thread's namespace;
// empty is the state without bindings.
func (p *bindingPlane[S]) init(log *slog.Logger, table int, empty *S) error {
	run, err := newNSRunner()
	if err != nil {
		return err
	}
	p.log, p.run, p.table = log, run, table
	p.state.Store(empty)
	p.routed, p.ctrs, p.flows = map[netip.Prefix]bool{}, map[HAKey]*tunnelCounters{}, newFlowMemory()
	return nil
}

// open makes, on the namespace's thread, the netlink handle, the device,
// the sending socket and, with openRx, the receiving socket. What it made
// is closeAll's to close, also on error.
func (p *bindingPlane[S]) open(device string, mtu int, offload bool, mark uint32, openRx func() (*rawSocket, error)) error {
	return p.run.do(func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("dataplane: netlink: %w", err)
		}
		p.nl = h
		if p.dev, err = openConfiguredTUN(h, device, mtu, offload); err != nil {
			return err
		}
		if p.tx, err = newRawSocket(unix.IPPROTO_RAW, mark, ""); err != nil {
			return err
		}
		p.rx, err = openRx()
		return err
	})
}

// closeAll closes the device (its routes go with it) and the sockets,
// which ends the packet loops, then the netlink handle and the thread.
func (p *bindingPlane[S]) closeAll() {
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

// setBindings makes the plane's bindings want (level-triggered): build
// indexes them for the packet loops, keeping the counters in old of those
// that stay, and names the destinations to route into the device.
func setBindings[S, B any](p *bindingPlane[S], ctx context.Context, want []B,
	build func(want []B, old map[HAKey]*tunnelCounters) (*S, map[HAKey]*tunnelCounters, map[netip.Prefix]bool)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := checkOpen(ctx, p.closed); err != nil {
		return err
	}
	st, ctrs, dsts := build(want, p.ctrs)
	p.ctrs = ctrs
	p.state.Store(st) // before the new routes: see setRoutes
	return p.setRoutes(dsts)
}

// setRoutes routes exactly dsts into the device. setBindings publishes the
// packet loops' state first, so that no packet is routed in that the loops
// cannot place; one routed in after its bindings went is dropped (home
// agent) or sent on the normal way (correspondent).
func (p *bindingPlane[S]) setRoutes(dsts map[netip.Prefix]bool) error {
	return p.run.do(func() error {
		var errs []error
		for dst := range dsts {
			if !p.routed[dst] {
				if err := p.nl.RouteReplace(p.route(dst)); err != nil {
					errs = append(errs, fmt.Errorf("route %s dev %s table %d: %w", dst, p.dev.name, p.table, err))
					continue
				}
				p.routed[dst] = true
			}
		}
		for dst := range p.routed {
			if !dsts[dst] {
				if err := p.nl.RouteDel(p.route(dst)); err != nil && !errors.Is(err, unix.ESRCH) {
					errs = append(errs, fmt.Errorf("route %s dev %s: delete: %w", dst, p.dev.name, err))
				}
				delete(p.routed, dst)
			}
		}
		return errors.Join(errs...)
	})
}

func (p *bindingPlane[S]) route(dst netip.Prefix) *netlink.Route {
	return &netlink.Route{
		Family:    netlink.FAMILY_V6,
		Dst:       &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 128)},
		LinkIndex: p.dev.index,
		Table:     p.table,
	}
}

func (p *bindingPlane[S]) stats() HAStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := HAStats{Bindings: make(map[HAKey]Counters, len(p.ctrs)), Drops: p.drops.snapshot()}
	for k, c := range p.ctrs {
		st.Bindings[k] = c.snapshot()
	}
	return st
}

// txLoop is both planes' sending loop: TUN -> place -> raw socket. place
// gets each IPv6 packet the kernel routes into the device (at
// buf[headroom:], size octets; larger than the MTU when too big) with the
// bindings as they were when the batch was read, and queues it on tp or
// counts it dropped; overhead is what it adds to a packet.
func (p *bindingPlane[S]) txLoop(mtu, overhead int, what string, place func(tp *txPipe, st *S, buf []byte, size int)) {
	defer p.wg.Done()
	tp := newTxPipe(p.dev, mtu)
	readMsg, sendMsg := what+" read", what+" send" // not per batch: no allocation
	for {
		n, err := tp.rd.read(tp.slots, mtu)
		if err != nil {
			if !tp.lim.retry(&p.stop, p.log, readMsg, err) {
				return
			}
			continue
		}
		st := p.state.Load()
		for i := range n {
			buf, size, ok := tp.rd.packet(i)
			if !ok {
				p.drops.malformed.Add(1)
				continue
			}
			place(tp, st, buf, size)
		}
		tp.send(p.tx, overhead, p.log, sendMsg)
	}
}

// txPipe is the sending loop's machinery of both planes: packets read from
// the device into slots with headroom, each sent to its own address on one
// raw socket in a batch and counted on its binding's counters.
type txPipe struct {
	rd    *tunReader
	mtu   int
	slots [][]byte
	ptb   []byte
	wb    *msgBatch
	ctrs  []*tunnelCounters // message i's binding's; nil: not counted
	k     int               // messages queued
	lim   errLimiter
}

func newTxPipe(dev *tunDevice, mtu int) *txPipe {
	return &txPipe{
		rd:    newTunReader(dev),
		mtu:   mtu,
		slots: makeSlots(batchSize, headroom+mtu+1),
		ptb:   make([]byte, virtioNetHdrLen+minMTU),
		wb:    newMsgBatch(batchSize, true, false),
		ctrs:  make([]*tunnelCounters, batchSize),
	}
}

// tooBig answers the packet at buf[headroom:], size octets, with a Packet
// Too Big from src.
func (t *txPipe) tooBig(drops *dropCounters, buf []byte, size int, src *[16]byte) {
	pkt := buf[headroom:]
	sendPTB(t.rd.dev, drops, t.ptb, pkt[:min(size, len(pkt))], t.mtu, src)
}

// add queues b, a packet in one of the slots, to dst; ctr (nil: none)
// counts it.
func (t *txPipe) add(b []byte, dst *[16]byte, ctr *tunnelCounters) {
	t.wb.set(t.k, b)
	t.wb.setAddr(t.k, dst)
	t.ctrs[t.k] = ctr
	t.k++
}

// send sends what add queued on s and counts it: each packet that went
// with all but overhead of its octets (what the plane added), an error for
// each that did not.
func (t *txPipe) send(s *rawSocket, overhead int, log *slog.Logger, what string) {
	k := t.k
	if k == 0 {
		return
	}
	t.k = 0
	_, err := s.send(t.wb, k)
	failed := s.failed // ascending
	for i, c := range t.ctrs[:k] {
		bad := len(failed) > 0 && failed[0] == i
		if bad {
			failed = failed[1:]
		}
		switch {
		case c == nil:
		case bad:
			c.txErrors.Add(1)
		default:
			c.txPackets.Add(1)
			c.txBytes.Add(uint64(len(t.wb.bufs[i]) - overhead))
		}
	}
	if err != nil && t.lim.ok() {
		log.Warn(what, "err", err)
	}
	clear(t.ctrs[:k])
}
