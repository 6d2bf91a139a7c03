package mhsock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/netmon"
	"github.com/mcoad/mcoad/pkg/proto"
)

// Conn sends and receives Mobility Header packets in one network
// namespace. Send and SendRaw may be called concurrently; Recv calls are
// serialised.
type Conn struct {
	rx
	log   *slog.Logger
	noPin bool

	pkt   *os.File // AF_PACKET, cooked, ETH_P_IPV6, all interfaces
	pktRC syscall.RawConn
	raw   *os.File // AF_INET6 SOCK_RAW IPPROTO_RAW (header included)
	rawRC syscall.RawConn
	mhFD  int // AF_INET6 SOCK_RAW IPPROTO_MH: only silences the kernel
	// stopMon stops the monitor Listen started (nil: Config.Monitor).
	stopMon func()
	nft     *nftTable // nil with NoICMPFilter

	// Receive state, guarded by readMu. readFn is made once so that a
	// read does not allocate a closure.
	readMu    sync.Mutex
	readFn    func(fd uintptr) bool
	rdBuf     []byte
	rdFrom    unix.RawSockaddrLinklayer
	rdFromLen uint32
	rdN       int
	rdErr     syscall.Errno

	// The context whose cancellation interrupts Recv, tracked by its Done
	// channel so that a loop passing the same context registers once.
	ctxMu   sync.Mutex
	ctxDone <-chan struct{}
	ctxStop func() bool

	sendMu  sync.Mutex
	sendBuf []byte

	statsMu     sync.Mutex
	kernelDrops uint64

	closed    atomic.Bool // set before the sockets close, to name their errors
	closeOnce sync.Once
	closeErr  error
}

// Listen opens a Conn in the calling thread's network namespace. A nil cfg
// means the defaults. It needs CAP_NET_RAW and CAP_NET_ADMIN.
func Listen(cfg *Config) (*Conn, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	c := &Conn{
		log:   cfg.Logger,
		noPin: cfg.NoPin,
		mhFD:  -1,
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.extra = slices.Clone(cfg.Local)
	c.prof = cfg.Profile
	if c.prof == nil {
		c.prof = proto.Draft00
	}
	c.readFn = c.readOnce
	ok := false
	defer func() {
		if !ok {
			c.closeAll()
		}
	}()

	var err error
	if c.mon = cfg.Monitor; c.mon == nil {
		if c.mon, c.stopMon, err = netmon.Start(&netmon.Config{Logger: c.log}); err != nil {
			return nil, fmt.Errorf("mhsock: %w", err)
		}
	}
	if c.raw, c.rawRC, err = openRaw(cfg.Mark); err != nil {
		return nil, err
	}
	if c.mhFD, err = openMHSilencer(); err != nil {
		return nil, err
	}
	// Quiet the kernel before listening.
	if !cfg.NoICMPFilter {
		name := cfg.NFTable
		if name == "" {
			name = DefaultNFTable
		}
		if c.nft, err = installNFT(name); err != nil {
			return nil, err
		}
	}
	rcvbuf := cfg.RecvBuffer
	if rcvbuf <= 0 {
		rcvbuf = 1 << 20
	}
	if c.pkt, c.pktRC, err = openPacket(rcvbuf); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

func openRaw(mark uint32) (*os.File, syscall.RawConn, error) {
	// IPPROTO_RAW implies IPV6_HDRINCL: we write the IPv6 header.
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, nil, fmt.Errorf("mhsock: raw socket: %w", err)
	}
	if mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
			unix.Close(fd)
			return nil, nil, fmt.Errorf("mhsock: SO_MARK: %w", err)
		}
	}
	return fileConn(fd, "mhsock-raw")
}

// openMHSilencer opens a raw socket of protocol 135. Its existence is what
// stops a kernel without MIPv6 from answering a plain Mobility Header with
// Parameter Problem code 1 (ip6_protocol_deliver_rcu sends that only when
// no raw socket took the packet); a filter that rejects everything keeps
// its queue empty, so it is never read.
func openMHSilencer() (int, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_MH)
	if err != nil {
		return -1, fmt.Errorf("mhsock: raw socket for protocol 135: %w", err)
	}
	if err := attachFilter(fd, []bpf.Instruction{bpf.RetConstant{Val: 0}}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func openPacket(rcvbuf int) (*os.File, syscall.RawConn, error) {
	// Protocol 0 receives nothing until bind, so no unfiltered packet
	// sneaks in before the filter is attached.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("mhsock: packet socket: %w", err)
	}
	if err := attachFilter(fd, mhFilter()); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	// Since Linux 4.20; older kernels deliver our own packets as
	// PACKET_OUTGOING and rx.accept drops them.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
	}
	// Ifindex 0: every interface, including those that appear later.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6)}); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("mhsock: bind packet socket: %w", err)
	}
	return fileConn(fd, "mhsock-packet")
}

func attachFilter(fd int, prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("mhsock: assemble filter: %w", err)
	}
	f := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		f[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}); err != nil {
		return fmt.Errorf("mhsock: attach filter: %w", err)
	}
	return nil
}

// fileConn wraps a non-blocking fd so that the runtime poller waits for it
// and Close wakes blocked readers.
func fileConn(fd int, name string) (*os.File, syscall.RawConn, error) {
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("mhsock: %s: %w", name, err)
	}
	return f, rc, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Recv blocks until a Mobility Header packet for one of this namespace's
// addresses arrives and fills r with it. It returns ctx.Err() when ctx is
// done and an error wrapping net.ErrClosed after Close. In steady state
// (the same r, the same ctx) it does not allocate.
func (c *Conn) Recv(ctx context.Context, r *Received) error {
	r.ensureBuf()
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if err := c.watchCtx(ctx); err != nil {
		return err
	}
	for {
		c.rdBuf = r.buf
		if err := c.pktRC.Read(c.readFn); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if err := ctx.Err(); err != nil {
					return err
				}
				// Not ours (watchCtx guards against this): clear, go on.
				c.ctxMu.Lock()
				err := c.pkt.SetReadDeadline(time.Time{})
				c.ctxMu.Unlock()
				if err != nil {
					return fmt.Errorf("mhsock: recv: %w", err)
				}
				continue
			}
			return fmt.Errorf("mhsock: recv: %w", c.closedErr(err))
		}
		if c.rdErr != 0 {
			return fmt.Errorf("mhsock: recvfrom: %w", c.rdErr)
		}
		if c.accept(r, c.rdN, int(c.rdFrom.Ifindex), c.rdFrom.Pkttype) {
			r.LinkSrc = c.rdFrom.Addr
			r.LinkSrcLen = min(int(c.rdFrom.Halen), len(r.LinkSrc))
			return nil
		}
	}
}

// readOnce is the body of one non-blocking recvfrom into c.rdBuf; false
// means "would block, wait for readability".
func (c *Conn) readOnce(fd uintptr) bool {
	for {
		c.rdFromLen = unix.SizeofSockaddrLinklayer
		n, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd,
			uintptr(unsafe.Pointer(&c.rdBuf[0])), uintptr(len(c.rdBuf)),
			unix.MSG_TRUNC, // n is the real length, to spot packets too long
			uintptr(unsafe.Pointer(&c.rdFrom)), uintptr(unsafe.Pointer(&c.rdFromLen)))
		switch e {
		case 0:
			c.rdN, c.rdErr = int(n), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			c.rdN, c.rdErr = 0, e
			return true
		}
	}
}

// aLongTimeAgo is a deadline in the past: it wakes a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// watchCtx arranges for ctx's cancellation to interrupt the read, once per
// context rather than once per call.
func (c *Conn) watchCtx(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := ctx.Done()
	c.ctxMu.Lock()
	defer c.ctxMu.Unlock()
	if done == c.ctxDone {
		return nil
	}
	if c.ctxStop != nil {
		c.ctxStop()
		c.ctxStop = nil
	}
	c.ctxDone = done
	if err := c.pkt.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("mhsock: recv: %w", c.closedErr(err))
	}
	if done != nil {
		c.ctxStop = context.AfterFunc(ctx, func() {
			c.ctxMu.Lock()
			defer c.ctxMu.Unlock()
			if c.ctxDone == done { // not replaced by a newer context meanwhile
				c.pkt.SetReadDeadline(aLongTimeAgo)
			}
		})
	}
	return nil
}

// Send builds p (proto.AppendPacket; sign may be nil) and sends it from
// p.Src. Unless Config.NoPin, the packet leaves through the interface that
// owns p.Src (an address on a loopback interface is not pinned). The source
// must be one of this namespace's addresses (ErrNoInterface otherwise).
func (c *Conn) Send(p *proto.Packet, sign proto.Signer) error {
	ifindex, err := c.ownerOf(p.Src)
	if err != nil {
		c.cnt.sendErrors.Add(1)
		return err
	}
	if c.noPin {
		ifindex = 0
	}
	return c.SendOn(ifindex, p, sign)
}

// SendOn builds p and sends it out of interface ifindex (0: as routing
// decides) whatever its source address: a mobile node returning home sends its de-registration from the
// home address before that address may be configured (RFC 6275 11.5.4), so
// the source is not local yet.
func (c *Conn) SendOn(ifindex int, p *proto.Packet, sign proto.Signer) error {
	return c.build(p, sign, func(b []byte) error { return c.SendRaw(b, ifindex) })
}

// build builds p into the send buffer and hands it to send.
func (c *Conn) build(p *proto.Packet, sign proto.Signer, send func([]byte) error) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	b, err := proto.AppendPacket(c.sendBuf[:0], p, c.prof, sign)
	if err != nil {
		c.cnt.sendErrors.Add(1)
		return fmt.Errorf("mhsock: build %v to %s: %w", p.MH.Type, p.Dst, err)
	}
	c.sendBuf = b
	return send(b)
}

// SendMarked builds p and sends it with fwmark mark instead of the
// socket's (Config.Mark), as routing decides: the mobile node's HoTI
// enters an eBPF tunnel, which has no device, by its BID's mark.
func (c *Conn) SendMarked(mark uint32, p *proto.Packet, sign proto.Signer) error {
	return c.build(p, sign, func(b []byte) error { return c.count(c.sendOOB(b, 0, markCmsg(mark))) })
}

// markCmsg is a SO_MARK control message (the kernel takes it from a
// sender with CAP_NET_ADMIN).
func markCmsg(mark uint32) []byte {
	b := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_SOCKET
	h.Type = unix.SO_MARK
	h.SetLen(unix.CmsgLen(4))
	*(*uint32)(unsafe.Pointer(&b[unix.CmsgLen(0)])) = mark
	return b
}

// ownerOf returns the index of the interface to pin a packet from src to
// (0 for loopback), refreshing the address list once if src is unknown: a
// care-of address may be newer than the last netlink notification read.
func (c *Conn) ownerOf(src netip.Addr) (int, error) {
	lookup := func(s *addrSet) (int, bool) {
		if s == nil {
			return 0, false
		}
		if src.IsLinkLocalUnicast() {
			// Only with a zone naming the interface.
			for idx, name := range s.names {
				if name == src.Zone() {
					_, ok := s.linkLocal[llKey{src.WithZone(""), idx}]
					return idx, ok
				}
			}
			return 0, false
		}
		idx, ok := s.owner[src]
		if ok && s.loopback[idx] {
			idx = 0
		}
		return idx, ok
	}
	if idx, ok := lookup(c.set()); ok {
		return idx, nil
	}
	if s, ok := c.refresh(); ok {
		if idx, ok := lookup(s); ok {
			return idx, nil
		}
	}
	return 0, fmt.Errorf("%w: %s", ErrNoInterface, src)
}

// SendRaw sends b, a whole IPv6 packet, as it is. A non-zero ifindex pins
// it to that interface: the kernel's route lookup then considers only
// routes through it (IPV6_PKTINFO with an unspecified source address).
func (c *Conn) SendRaw(b []byte, ifindex int) error {
	return c.count(c.sendRaw(b, ifindex))
}

// count counts a send that ended with err.
func (c *Conn) count(err error) error {
	if err != nil {
		c.cnt.sendErrors.Add(1)
		return err
	}
	c.cnt.sent.Add(1)
	return nil
}

func (c *Conn) sendRaw(b []byte, ifindex int) error {
	var oob []byte
	if ifindex != 0 {
		oob = pktinfo(ifindex)
	}
	return c.sendOOB(b, ifindex, oob)
}

func (c *Conn) sendOOB(b []byte, ifindex int, oob []byte) error {
	if len(b) < proto.IPv6HeaderLen || b[0]>>4 != 6 {
		return ErrBadPacket
	}
	sa := &unix.SockaddrInet6{Addr: [16]byte(b[24:40])}
	if dst := netip.AddrFrom16(sa.Addr); dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() {
		sa.ZoneId = uint32(ifindex)
	}
	var serr error
	err := c.rawRC.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgN(int(fd), b, oob, sa, 0)
		return serr != unix.EAGAIN
	})
	if err != nil {
		err = c.closedErr(err)
	} else {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("mhsock: send to %s via %s: %w", netip.AddrFrom16(sa.Addr), c.ifName(ifindex), err)
	}
	return nil
}

// pktinfo is an IPV6_PKTINFO control message that names the outgoing
// interface and leaves the source address to the packet.
func pktinfo(ifindex int) []byte {
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_IPV6
	h.Type = unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
	pi.Ifindex = uint32(ifindex)
	return b
}

func (c *Conn) ifName(ifindex int) string {
	if ifindex == 0 {
		return "routing table"
	}
	if s := c.set(); s != nil {
		if n, ok := s.names[ifindex]; ok {
			return n
		}
	}
	return fmt.Sprintf("ifindex %d", ifindex)
}

// Stats returns the counters. KernelDrops is read from the socket.
func (c *Conn) Stats() Stats {
	s := c.stats()
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	// PACKET_STATISTICS resets on read: accumulate.
	_ = c.pktRC.Control(func(fd uintptr) {
		if st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			c.kernelDrops += uint64(st.Drops)
		}
	})
	s.KernelDrops = c.kernelDrops
	return s
}

// ICMPSuppressed returns how many ICMPv6 Parameter Problem messages the
// nftables rules dropped (0 with NoICMPFilter).
func (c *Conn) ICMPSuppressed() (uint64, error) {
	if c.nft == nil {
		return 0, nil
	}
	return c.nft.suppressed()
}

// Close removes the nftables table, closes the sockets and wakes a blocked
// Recv. It is safe to call more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.closeAll() })
	return c.closeErr
}

// closedErr turns the poller's error for a closed descriptor (which is not
// os.ErrClosed on a SyscallConn) into net.ErrClosed.
func (c *Conn) closedErr(err error) error {
	if c.closed.Load() || errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return err
}

func (c *Conn) closeAll() error {
	c.closed.Store(true)
	var errs []error
	if c.nft != nil {
		errs = append(errs, c.nft.remove())
	}
	c.ctxMu.Lock()
	if c.ctxStop != nil {
		c.ctxStop()
		c.ctxStop = nil
	}
	c.ctxMu.Unlock()
	if c.pkt != nil {
		errs = append(errs, c.pkt.Close())
	}
	if c.raw != nil {
		errs = append(errs, c.raw.Close())
	}
	if c.mhFD >= 0 {
		errs = append(errs, unix.Close(c.mhFD))
	}
	if c.stopMon != nil {
		c.stopMon()
	}
	return errors.Join(errs...)
}
