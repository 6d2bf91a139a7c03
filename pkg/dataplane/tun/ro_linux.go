package tun

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/routeopt"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/tunio"
)

// The mobile node's route-optimised path, in the userspace backend.
//
// Sending: BID b's sending goroutine (txLoop) hands every packet to roTx
// before encapsulating it. A packet to a correspondent that has a binding
// for b at b's current care-of address (SetRORoutes) gets a Home Address
// option and leaves from the care-of address on one raw socket, pinned to
// b's interface per packet with IPV6_PKTINFO and sent with the bypass mark;
// anything else (other destinations, signaling such as the HoTI, packets
// with routing or destination options headers of their own) takes the
// tunnel as before. So the flow policy that picks b for a flow also picks
// b's route-optimised path, and a correspondent binding that goes sends
// the flow back into the tunnel at once.
//
// Receiving: a kernel without CONFIG_IPV6_MIP6 drops packets with a type 2
// routing header (and answers with a parameter problem, which pkg/mhsock's
// nftables table drops), so an AF_PACKET socket whose filter keeps IPv6
// packets with a type 2 routing header right behind the IPv6 header (and no
// Mobility Header behind that: signaling is pkg/mhsock's) takes them. Those
// to the care-of address of a tunnel and whose routing header holds the
// home address lose the header, get the home address as destination and go
// into the BID's TUN device like decapsulated packets, so applications see
// an ordinary packet to the home address.

var _ dataplane.RouteOptimizer = (*tunBackend)(nil)

// roState is the backend's route optimisation; the fields other than tab
// and tx belong to whoever holds the backend's mutex.
type roState struct {
	tab    atomic.Pointer[roTable] // nil: no routes
	tx     atomic.Pointer[tunio.RawSocket]
	ctrs   map[uint16]*tunio.TunnelCounters
	rx     *tunio.RawSocket
	rxDone chan struct{}
	rxStop atomic.Bool
}

type roTable struct {
	peers map[roKey]roDest
	ctrs  map[uint16]*tunio.TunnelCounters
}

type roKey struct {
	bid  uint16
	peer [16]byte
}

type roDest struct {
	coa [16]byte
	ctr *tunio.TunnelCounters
}

// SetRORoutes makes the route-optimised set exactly routes.
func (b *tunBackend) SetRORoutes(ctx context.Context, routes []dataplane.RORoute) error {
	want, err := dataplane.CheckRORoutes(routes)
	if err != nil {
		return err
	}
	return b.do(ctx, func() error { return b.reconcileRO(want) })
}

// reconcileRO runs on the namespace's thread.
func (b *tunBackend) reconcileRO(want []dataplane.RORoute) error {
	r := &b.ro
	if len(want) == 0 {
		r.tab.Store(nil)
		r.close()
		return nil
	}
	if r.tx.Load() == nil {
		s, err := tunio.NewRawSocket(unix.IPPROTO_RAW, b.cfg.Mark, "")
		if err != nil {
			return fmt.Errorf("route optimisation: %w", err)
		}
		r.tx.Store(s)
	}
	if r.rx == nil {
		s, err := tunio.NewPacketSocket(routeopt.RH2Filter())
		if err != nil {
			return fmt.Errorf("route optimisation: %w", err)
		}
		r.rx, r.rxDone = s, make(chan struct{})
		r.rxStop.Store(false)
		go b.roRxLoop(s, r.rxDone)
	}
	tab := &roTable{peers: make(map[roKey]roDest, len(want)), ctrs: map[uint16]*tunio.TunnelCounters{}}
	for _, rt := range want {
		c := tunio.CounterFor(tab.ctrs, r.ctrs, rt.BID) // one per BID
		tab.peers[roKey{rt.BID, rt.Peer.As16()}] = roDest{coa: rt.CoA.As16(), ctr: c}
	}
	r.ctrs = tab.ctrs
	r.tab.Store(tab)
	return nil
}

// close stops receiving and closes the sockets (a send in flight on the
// old socket fails and is counted).
func (r *roState) close() {
	if s := r.tx.Swap(nil); s != nil {
		s.Close()
	}
	if r.rx != nil {
		r.rxStop.Store(true)
		r.rx.Close()
		<-r.rxDone
		r.rx = nil
	}
}

func (b *tunBackend) ROStats() map[uint16]dataplane.Counters {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[uint16]dataplane.Counters, len(b.ro.ctrs))
	for bid, c := range b.ro.ctrs {
		out[bid] = c.Snapshot()
	}
	return out
}

// roTx is one BID's route-optimised sending, owned by its txLoop: add takes
// a packet out of the tunnel's batch, flush sends what add took.
type roTx struct {
	b   *tunBackend
	bid uint16
	wb  *tunio.MsgBatch
	n   int
	ctr [packet.BatchSize]*tunio.TunnelCounters

	// sendmmsg state for wfn, made once so a send does not allocate.
	wfn         func(fd uintptr) bool
	from, count int
	sent        int
	errno       unix.Errno
	lim         tunio.ErrLimiter
}

func (b *tunBackend) newROTx(t *mnTunnel) *roTx {
	r := &roTx{b: b, bid: t.bid, wb: tunio.NewMsgBatch(packet.BatchSize, true, true)}
	r.wfn = r.sendSome
	return r
}

// add route-optimises the packet at buf[headroom:headroom+size] when its
// destination has a binding for this BID at p's care-of address, and
// reports whether it did; the packet then stays in buf until flush.
func (r *roTx) add(buf []byte, size int, p *txPath) bool {
	tab := r.b.ro.tab.Load()
	if tab == nil || size < dataplane.IPv6HeaderLen || packet.Headroom+size > len(buf) {
		return false
	}
	d, ok := tab.peers[roKey{r.bid, [16]byte(buf[packet.Headroom+24 : packet.Headroom+40])}]
	if !ok || d.coa != p.src || [16]byte(buf[packet.Headroom+8:packet.Headroom+24]) != p.hoa {
		return false // a mobile network's packet (NEMO) is not the home address's to optimise
	}
	ns, nn, err := routeopt.InsertHAO(buf, packet.Headroom, size, &p.src)
	if err != nil {
		return false // the tunnel takes it
	}
	r.wb.Set(r.n, buf[ns:ns+nn])
	r.wb.SetAddr(r.n, (*[16]byte)(buf[ns+24:ns+40]))
	r.wb.SetPktinfo(r.n, p.t.Ifindex)
	r.ctr[r.n] = d.ctr
	r.n++
	return true
}

// flush sends the packets add took, without waiting for socket buffer
// space: what does not go is counted as a send error.
func (r *roTx) flush() {
	n := r.n
	if n == 0 {
		return
	}
	r.n = 0
	s := r.b.ro.tx.Load()
	var firstErr error
	for from := 0; from < n; {
		r.from, r.count, r.sent, r.errno = from, n-from, 0, 0
		var err error = dataplane.ErrClosed
		if s != nil {
			err = s.Rc.Write(r.wfn)
		}
		for i := from; i < from+r.sent; i++ {
			r.ctr[i].TxPackets.Add(1)
			r.ctr[i].TxBytes.Add(uint64(len(r.wb.Bufs[i])))
		}
		from += r.sent
		if from == n {
			break
		}
		switch {
		case err != nil: // the socket is closed: nothing more goes
		case r.errno != 0: // this one fails, the others may go
			if firstErr == nil {
				firstErr = r.errno
			}
			r.ctr[from].TxErrors.Add(1)
			from++
			continue
		default: // the buffer is full: drop the rest
			err = unix.EAGAIN
		}
		if firstErr == nil {
			firstErr = err
		}
		for i := from; i < n; i++ {
			r.ctr[i].TxErrors.Add(1)
		}
		break
	}
	if firstErr != nil && r.lim.Ok() {
		r.b.log.Warn("route-optimised send", "bid", r.bid, "err", firstErr)
	}
	clear(r.ctr[:n])
}

func (r *roTx) sendSome(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&r.wb.Hdrs[r.from])), uintptr(r.count), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e == 0 {
			r.sent = int(n)
		} else if e != unix.EAGAIN {
			r.errno = e
		}
		return true // never wait: a full buffer drops the rest
	}
}

// roRxLoop: AF_PACKET -> strip the type 2 routing header -> BID's TUN.
func (b *tunBackend) roRxLoop(s *tunio.RawSocket, done chan struct{}) {
	defer close(done)
	rx := tunio.NewRxPipe(tunio.PacketSocketSlot, false, false)
	rx.Run(s, &b.ro.rxStop, b.log, "route-optimised receive", &b.drops, func(n int) {
		tab, ro := b.rxTab.Load(), b.ro.tab.Load()
		for i := range n {
			pkt := rx.Packet(i)
			if len(pkt) < dataplane.IPv6HeaderLen {
				b.drops.Malformed.Add(1)
				continue
			}
			e, ok := tab.byCoA[[16]byte(pkt[24:40])]
			if !ok {
				b.drops.Unknown.Add(1)
				continue
			}
			buf := rx.Bufs[i]
			ns, nn, err := routeopt.StripRH2(buf, packet.VirtioNetHdrLen, len(pkt), &tab.hoa)
			if err != nil {
				if errors.Is(err, routeopt.ErrNotOurs) {
					b.drops.NotHome.Add(1)
				} else {
					b.drops.Malformed.Add(1)
				}
				continue
			}
			if !rx.Wr.Add(e.t.dev, buf[ns-packet.VirtioNetHdrLen:ns+nn], dataplane.MaxPacket) {
				b.drops.Malformed.Add(1)
				continue
			}
			if ro != nil {
				if c := ro.ctrs[e.t.bid]; c != nil {
					c.RxPackets.Add(1)
					c.RxBytes.Add(uint64(nn))
				}
			}
		}
	})
}
