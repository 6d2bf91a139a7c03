package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
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

// RouteOptimizer is implemented by mobile-node backends that can send and
// receive route-optimised (the userspace one). SetRORoutes is
// level-triggered like SetTunnels: the whole set each time.
type RouteOptimizer interface {
	SetRORoutes(ctx context.Context, routes []RORoute) error
	// ROStats counts route-optimised packets by BID.
	ROStats() map[uint16]Counters
}

var _ RouteOptimizer = (*tunBackend)(nil)

// roState is the backend's route optimisation; the fields other than tab
// and tx belong to whoever holds the backend's mutex.
type roState struct {
	tab    atomic.Pointer[roTable] // nil: no routes
	tx     atomic.Pointer[rawSocket]
	ctrs   map[uint16]*tunnelCounters
	rx     *rawSocket
	rxDone chan struct{}
	rxStop atomic.Bool
}

type roTable struct {
	peers map[roKey]roDest
	ctrs  map[uint16]*tunnelCounters
}

type roKey struct {
	bid  uint16
	peer [16]byte
}

type roDest struct {
	coa [16]byte
	ctr *tunnelCounters
}

// SetRORoutes makes the route-optimised set exactly routes.
func (b *tunBackend) SetRORoutes(ctx context.Context, routes []RORoute) error {
	want, err := checkRORoutes(routes)
	if err != nil {
		return err
	}
	return b.do(ctx, func() error { return b.reconcileRO(want) })
}

// reconcileRO runs on the namespace's thread.
func (b *tunBackend) reconcileRO(want []RORoute) error {
	r := &b.ro
	if len(want) == 0 {
		r.tab.Store(nil)
		r.close()
		return nil
	}
	if r.tx.Load() == nil {
		s, err := newRawSocket(unix.IPPROTO_RAW, b.cfg.Mark, "")
		if err != nil {
			return fmt.Errorf("route optimisation: %w", err)
		}
		r.tx.Store(s)
	}
	if r.rx == nil {
		s, err := newPacketSocket(rh2Filter())
		if err != nil {
			return fmt.Errorf("route optimisation: %w", err)
		}
		r.rx, r.rxDone = s, make(chan struct{})
		r.rxStop.Store(false)
		go b.roRxLoop(s, r.rxDone)
	}
	tab := &roTable{peers: make(map[roKey]roDest, len(want)), ctrs: map[uint16]*tunnelCounters{}}
	for _, rt := range want {
		c := counterFor(tab.ctrs, r.ctrs, rt.BID) // one per BID
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
		s.close()
	}
	if r.rx != nil {
		r.rxStop.Store(true)
		r.rx.close()
		<-r.rxDone
		r.rx = nil
	}
}

func (b *tunBackend) ROStats() map[uint16]Counters {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[uint16]Counters, len(b.ro.ctrs))
	for bid, c := range b.ro.ctrs {
		out[bid] = c.snapshot()
	}
	return out
}

// roTx is one BID's route-optimised sending, owned by its txLoop: add takes
// a packet out of the tunnel's batch, flush sends what add took.
type roTx struct {
	b   *tunBackend
	bid uint16
	wb  *msgBatch
	n   int
	ctr [batchSize]*tunnelCounters

	// sendmmsg state for wfn, made once so a send does not allocate.
	wfn         func(fd uintptr) bool
	from, count int
	sent        int
	errno       unix.Errno
	lim         errLimiter
}

func (b *tunBackend) newROTx(t *mnTunnel) *roTx {
	r := &roTx{b: b, bid: t.bid, wb: newMsgBatch(batchSize, true, true)}
	r.wfn = r.sendSome
	return r
}

// add route-optimises the packet at buf[headroom:headroom+size] when its
// destination has a binding for this BID at p's care-of address, and
// reports whether it did; the packet then stays in buf until flush.
func (r *roTx) add(buf []byte, size int, p *txPath) bool {
	tab := r.b.ro.tab.Load()
	if tab == nil || size < ipv6HeaderLen || headroom+size > len(buf) {
		return false
	}
	d, ok := tab.peers[roKey{r.bid, [16]byte(buf[headroom+24 : headroom+40])}]
	if !ok || d.coa != p.src || [16]byte(buf[headroom+8:headroom+24]) != p.hoa {
		return false // a mobile network's packet (NEMO) is not the home address's to optimise
	}
	ns, nn, err := insertHAO(buf, headroom, size, &p.src)
	if err != nil {
		return false // the tunnel takes it
	}
	r.wb.set(r.n, buf[ns:ns+nn])
	r.wb.setAddr(r.n, (*[16]byte)(buf[ns+24:ns+40]))
	r.wb.setPktinfo(r.n, p.t.Ifindex)
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
		var err error = ErrClosed
		if s != nil {
			err = s.rc.Write(r.wfn)
		}
		for i := from; i < from+r.sent; i++ {
			r.ctr[i].txPackets.Add(1)
			r.ctr[i].txBytes.Add(uint64(len(r.wb.bufs[i])))
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
			r.ctr[from].txErrors.Add(1)
			from++
			continue
		default: // the buffer is full: drop the rest
			err = unix.EAGAIN
		}
		if firstErr == nil {
			firstErr = err
		}
		for i := from; i < n; i++ {
			r.ctr[i].txErrors.Add(1)
		}
		break
	}
	if firstErr != nil && r.lim.ok() {
		r.b.log.Warn("route-optimised send", "bid", r.bid, "err", firstErr)
	}
	clear(r.ctr[:n])
}

func (r *roTx) sendSome(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&r.wb.hdrs[r.from])), uintptr(r.count), unix.MSG_DONTWAIT, 0, 0)
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

// setPktinfo pins message i of a send batch to interface ifindex (an
// IPV6_PKTINFO with an unspecified source: the packet carries its own).
func (m *msgBatch) setPktinfo(i, ifindex int) {
	b := m.oob[i*oobSpace : i*oobSpace+unix.CmsgSpace(unix.SizeofInet6Pktinfo)]
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	binary.NativeEndian.PutUint32(b[unix.CmsgLen(0)+16:], uint32(ifindex))
	m.hdrs[i].Hdr.SetControllen(len(b))
}

// roRxSlot holds a received packet: no GRO merges packets with routing
// headers, so the largest is a jumbo frame.
const roRxSlot = virtioNetHdrLen + maxOuter

// roRxLoop: AF_PACKET -> strip the type 2 routing header -> BID's TUN.
func (b *tunBackend) roRxLoop(s *rawSocket, done chan struct{}) {
	defer close(done)
	rx := newRxPipe(roRxSlot, false, false)
	rx.run(s, &b.ro.rxStop, b.log, "route-optimised receive", &b.drops, func(n int) {
		tab, ro := b.rxTab.Load(), b.ro.tab.Load()
		for i := range n {
			pkt := rx.packet(i)
			if len(pkt) < ipv6HeaderLen {
				b.drops.malformed.Add(1)
				continue
			}
			e, ok := tab.byCoA[[16]byte(pkt[24:40])]
			if !ok {
				b.drops.unknown.Add(1)
				continue
			}
			buf := rx.bufs[i]
			ns, nn, err := stripRH2(buf, virtioNetHdrLen, len(pkt), &tab.hoa)
			if err != nil {
				if errors.Is(err, errNotOurs) {
					b.drops.notHome.Add(1)
				} else {
					b.drops.malformed.Add(1)
				}
				continue
			}
			if !rx.wr.add(e.t.dev, buf[ns-virtioNetHdrLen:ns+nn], maxPacket) {
				b.drops.malformed.Add(1)
				continue
			}
			if ro != nil {
				if c := ro.ctrs[e.t.bid]; c != nil {
					c.rxPackets.Add(1)
					c.rxBytes.Add(uint64(nn))
				}
			}
		}
	})
}

// bpfAccept is the filter's return value for a packet it keeps: all of it.
const bpfAccept = 0x40000

// rh2Filter keeps, on a cooked AF_PACKET socket (the packet starts at the
// IPv6 header), IPv6 packets with a type 2 routing header with one segment
// left right behind the IPv6 header and no Mobility Header behind it.
func rh2Filter() []bpf.Instruction {
	return extFilter(protoRouting,
		bpf.LoadAbsolute{Off: ipv6HeaderLen + 2, Size: 2}, // type, segments left
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: routingType2<<8 | 1},
	)
}

// haoFilter keeps IPv6 packets with a Destination Options header right
// behind the IPv6 header and no Mobility Header behind that: candidates for
// a Home Address option, which Go looks for.
func haoFilter() []bpf.Instruction {
	return extFilter(protoDstOpts)
}

// extFilter keeps IPv6 packets whose first header behind the IPv6 header
// is proto, passes check, is not followed by a Mobility Header and is there
// whole (roExtLen octets: the load past the end of a shorter packet
// rejects it). Every jump's false branch goes to the reject.
func extFilter(proto uint32, check ...bpf.Instruction) []bpf.Instruction {
	f := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x60},
		bpf.LoadAbsolute{Off: 6, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: proto},
	}
	f = append(f, check...)
	f = append(f,
		bpf.LoadAbsolute{Off: ipv6HeaderLen, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoMH},
		bpf.LoadAbsolute{Off: ipv6HeaderLen + roExtLen - 1, Size: 1},
		bpf.RetConstant{Val: bpfAccept},
		bpf.RetConstant{Val: 0},
	)
	for i, ins := range f {
		if j, ok := ins.(bpf.JumpIf); ok {
			j.SkipFalse = uint8(len(f) - 2 - i)
			f[i] = j
		}
	}
	return f
}

// newPacketSocket opens a cooked AF_PACKET socket for IPv6 on every
// interface with filter attached before it receives anything, in the
// calling thread's namespace. It receives with rawSocket.recv.
func newPacketSocket(filter []bpf.Instruction) (*rawSocket, error) {
	raw, err := bpf.Assemble(filter)
	if err != nil {
		return nil, fmt.Errorf("packet socket: filter: %w", err)
	}
	// Protocol 0 receives nothing until bind, so no unfiltered packet
	// arrives before the filter is attached.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	fail := func(what string, err error) (*rawSocket, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("packet socket: %s: %w", what, err)
	}
	f := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		f[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}); err != nil {
		return fail("attach filter", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	const ethPIPv6 = unix.ETH_P_IPV6>>8 | unix.ETH_P_IPV6&0xff<<8 // network order
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPIPv6}); err != nil {
		return fail("bind", err)
	}
	return socketFile(fd, "packet:ipv6")
}
