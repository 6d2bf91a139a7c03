// Package tunio is the data plane's I/O: TUN devices, raw and packet
// sockets with batched sends and receives, a thread pinned to a network
// namespace, and the counters the packet loops keep.
package tunio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
)

// maxOuter caps tunnel MTUs (jumbo frames) so that send buffers stay small.
const MaxOuter = 9216

// rxBatch and rxSlot size the receive batches: a received inner packet can
// be a 64 KiB TCP super-packet when the receiving interface does GRO
// (Linux merges IPv6-in-IPv6 TCP segments), so every slot takes one.
const (
	rxBatch = 32
	RxSlot  = packet.VirtioNetHdrLen + dataplane.IPv6HeaderLen + dataplane.MaxPacket
)

// NSRunner runs functions on one OS thread that stays in the network
// namespace its creator's thread was in, so that devices and sockets made
// after the constructor returns land in the same namespace whichever
// goroutine asks for them.
type NSRunner struct {
	reqs chan func()
}

func NewNSRunner() (*NSRunner, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("dataplane: current network namespace: %w", err)
	}
	r := &NSRunner{reqs: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread dies with this goroutine, so it
		// never goes back to the scheduler in another namespace.
		err := netns.Set(ns)
		ns.Close()
		ready <- err
		if err != nil {
			return
		}
		for f := range r.reqs {
			f()
		}
	}()
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("dataplane: enter network namespace: %w", err)
	}
	return r, nil
}

// Do runs f on the namespace's thread.
func (r *NSRunner) Do(f func() error) error {
	errc := make(chan error, 1)
	r.reqs <- func() { errc <- f() }
	return <-errc
}

func (r *NSRunner) Close() { close(r.reqs) }

// TunDevice is a TUN device (IFF_TUN|IFF_NO_PI, and IFF_VNET_HDR with TSO
// when offloads are on) in the runtime's poller. It disappears when closed.
type TunDevice struct {
	Name  string
	Index int
	vnet  bool
	f     *os.File
	rc    syscall.RawConn

	// Read batch state, owned by the one reading goroutine.
	rbufs  [][]byte
	rsizes []int
	rcount int
	rerr   error
	rfn    func(fd uintptr) bool
}

// openTUN creates the TUN device name in the calling thread's namespace.
func openTUN(name string, offload bool) (*TunDevice, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: open /dev/net/tun: %w", dataplane.ErrUnavailable, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: tun name %q: %w", dataplane.ErrInvalid, name, err)
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if offload {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %s: TUNSETIFF: %w", name, err)
	}
	// A device a previous process kept for a restart (keep) is
	// persistent: attached again, it goes with this process as usual.
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %s: TUNSETPERSIST: %w", name, err)
	}
	if offload {
		// The kernel may hand us unchecksummed TCP and 64 KiB TCP
		// super-packets; we checksum and segment them ourselves.
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO6); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("tun %s: TUNSETOFFLOAD: %w", name, err)
		}
	}
	f := os.NewFile(uintptr(fd), "tun:"+name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tun %s: %w", name, err)
	}
	t := &TunDevice{Name: name, vnet: offload, f: f, rc: rc}
	t.rfn = t.readSome
	return t, nil
}

// readBatch reads at least one and at most len(bufs) packets, waiting in
// the poller while there is none, and returns how many it read; sizes gets
// their lengths. A length larger than its buffer means the packet was cut.
func (t *TunDevice) readBatch(bufs [][]byte, sizes []int) (int, error) {
	t.rbufs, t.rsizes, t.rcount, t.rerr = bufs, sizes, 0, nil
	err := t.rc.Read(t.rfn)
	n := t.rcount
	t.rbufs, t.rsizes = nil, nil
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = t.rerr
	}
	return 0, err
}

func (t *TunDevice) readSome(fd uintptr) bool {
	for t.rcount < len(t.rbufs) {
		n, err := unix.Read(int(fd), t.rbufs[t.rcount])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return t.rcount > 0
		case err != nil:
			t.rerr = err
			return true
		case n == 0: // the device is going away
			t.rerr = io.EOF
			return true
		}
		t.rsizes[t.rcount] = n
		t.rcount++
	}
	return true
}

func (t *TunDevice) write(b []byte) (int, error) { return t.f.Write(b) }

func (t *TunDevice) Close() error { return t.f.Close() }

// SetPersist makes the device persistent (on), so that it outlives its
// file and the process for the next process to attach to, or not (openTUN
// clears it on attaching).
func (t *TunDevice) SetPersist(on bool) error {
	v := 0
	if on {
		v = 1
	}
	var err error
	if cerr := t.rc.Control(func(fd uintptr) { err = unix.IoctlSetInt(int(fd), unix.TUNSETPERSIST, v) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("tun %s: TUNSETPERSIST: %w", t.Name, err)
	}
	return nil
}

// RawSocket is a raw IPv6 socket in the runtime's poller, with
// recvmmsg/sendmmsg batches that allocate nothing per packet.
type RawSocket struct {
	f  *os.File
	Rc syscall.RawConn

	rb            *MsgBatch
	rn, rmax      int
	rerr          error
	rfn           func(fd uintptr) bool
	wb            *MsgBatch
	wfrom, wcount int
	wn            int
	werr          error
	wfn           func(fd uintptr) bool
	// Failed lists the messages of the last send that did not go.
	Failed []int
}

// NewRawSocket opens a raw IPv6 socket for proto; mark 0 sets no mark,
// dev "" binds to no device.
func NewRawSocket(proto int, mark uint32, dev string) (*RawSocket, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("raw socket (protocol %d): %w", proto, err)
	}
	fail := func(what string, err error) (*RawSocket, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("raw socket (protocol %d): %s: %w", proto, what, err)
	}
	if mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
			return fail("SO_MARK", err)
		}
	}
	if dev != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev); err != nil {
			return fail("SO_BINDTODEVICE "+dev, err)
		}
	}
	if proto == unix.IPPROTO_RAW {
		// Sends only: never queue what arrives.
		if err := unix.Shutdown(fd, unix.SHUT_RD); err != nil && !errors.Is(err, unix.ENOTCONN) {
			return fail("shutdown", err)
		}
		// Large batches of tunnel packets: a send buffer that holds them.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	} else {
		for _, o := range []int{unix.IPV6_RECVPKTINFO, unix.IPV6_RECVTCLASS} {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o, 1); err != nil {
				return fail("IPV6_RECVPKTINFO/TCLASS", err)
			}
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	return socketFile(fd, fmt.Sprintf("raw6:%d", proto))
}

// socketFile puts the socket fd, set up, in the runtime's poller.
func socketFile(fd int, name string) (*RawSocket, error) {
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("socket %s: %w", name, err)
	}
	s := &RawSocket{f: f, Rc: rc, Failed: make([]int, 0, packet.BatchSize)}
	s.rfn, s.wfn = s.recvSome, s.sendSome
	return s, nil
}

// Connect fixes the destination of every send (the mobile node's tunnels
// all go to the home agent), so sends need no address.
func (s *RawSocket) Connect(dst netip.Addr) error {
	var err error
	cerr := s.Rc.Control(func(fd uintptr) {
		sa := &unix.SockaddrInet6{Addr: dst.As16()}
		err = unix.Connect(int(fd), sa)
	})
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("connect %s: %w", dst, err)
	}
	return nil
}

func (s *RawSocket) Close() error { return s.f.Close() }

// MsgBatch holds the kernel-facing arrays of a recvmmsg/sendmmsg batch.
type MsgBatch struct {
	Hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   []byte
	Bufs  [][]byte // the packet of each message
}

const oobSpace = 64 // IPV6_PKTINFO (20) and IPV6_TCLASS (4), with headers

// NewMsgBatch makes a batch of n messages; withNames gives each an address,
// oob an ancillary buffer.
func NewMsgBatch(n int, withNames, oob bool) *MsgBatch {
	m := &MsgBatch{
		Hdrs: make([]unix.Mmsghdr, n),
		iovs: make([]unix.Iovec, n),
		Bufs: make([][]byte, n),
	}
	if withNames {
		m.names = make([]unix.RawSockaddrInet6, n)
	}
	if oob {
		m.oob = make([]byte, n*oobSpace)
	}
	for i := range m.Hdrs {
		h := &m.Hdrs[i].Hdr
		h.Iov = &m.iovs[i]
		h.Iovlen = 1
		if withNames {
			h.Name = (*byte)(unsafe.Pointer(&m.names[i]))
			h.Namelen = unix.SizeofSockaddrInet6
		}
		if oob {
			h.Control = &m.oob[i*oobSpace]
		}
	}
	return m
}

// Set points message i at b.
func (m *MsgBatch) Set(i int, b []byte) {
	m.Bufs[i] = b
	m.iovs[i].Base = unsafe.SliceData(b)
	m.iovs[i].SetLen(len(b))
}

// SetAddr sets message i's destination.
func (m *MsgBatch) SetAddr(i int, a *[16]byte) {
	m.names[i] = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: *a}
}

// resetRecv readies messages [0, n) for a receive.
func (m *MsgBatch) resetRecv(n int) {
	for i := range n {
		h := &m.Hdrs[i]
		h.Len = 0
		h.Hdr.Flags = 0
		if m.names != nil {
			h.Hdr.Namelen = unix.SizeofSockaddrInet6
		}
		if m.oob != nil {
			h.Hdr.SetControllen(oobSpace)
		}
		m.iovs[i].SetLen(len(m.Bufs[i]))
	}
}

// recv receives up to len(rb.bufs) packets into rb (the buffers set with
// rb.set), waiting in the poller while there is none.
func (s *RawSocket) recv(rb *MsgBatch) (int, error) {
	rb.resetRecv(len(rb.Bufs))
	s.rb, s.rmax, s.rn, s.rerr = rb, len(rb.Bufs), 0, nil
	err := s.Rc.Read(s.rfn)
	s.rb = nil
	if err != nil {
		return 0, err
	}
	return s.rn, s.rerr
}

func (s *RawSocket) recvSome(fd uintptr) bool {
	return mmsg(unix.SYS_RECVMMSG, fd, &s.rb.Hdrs[0], s.rmax, &s.rn, &s.rerr)
}

// mmsg makes the recvmmsg or sendmmsg call trap on n messages from hdrs,
// without blocking, for a RawConn's Read or Write: false asks to wait for
// the socket; true is done, with the count in *done or the error in *err.
func mmsg(trap, fd uintptr, hdrs *unix.Mmsghdr, n int, done *int, err *error) bool {
	for {
		r, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(hdrs)), uintptr(n), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			*done = int(r)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			*err = e
			return true
		}
	}
}

// Send sends messages [0, n) of wb; it returns how many went and the
// first error. A message that fails is skipped (and listed in s.failed):
// the rest are still sent.
func (s *RawSocket) Send(wb *MsgBatch, n int) (sent int, firstErr error) {
	s.wb = wb
	s.Failed = s.Failed[:0]
	for from := 0; from < n; {
		s.wfrom, s.wcount, s.wn, s.werr = from, n-from, 0, nil
		if err := s.Rc.Write(s.wfn); err != nil {
			// The socket is closed: nothing more goes.
			for i := from; i < n; i++ {
				s.Failed = append(s.Failed, i)
			}
			s.wb = nil
			return sent, err
		}
		sent += s.wn
		from += s.wn
		if s.werr != nil {
			if firstErr == nil {
				firstErr = s.werr
			}
			s.Failed = append(s.Failed, from)
			from++
		}
	}
	s.wb = nil
	return sent, firstErr
}

func (s *RawSocket) sendSome(fd uintptr) bool {
	return mmsg(unix.SYS_SENDMMSG, fd, &s.wb.Hdrs[s.wfrom], s.wcount, &s.wn, &s.werr)
}

// RxMeta is what a received tunnel packet's message says about its outer
// header.
type RxMeta struct {
	Src, Dst [16]byte
	ifindex  int
	Tclass   uint8
	Trunc    bool
}

// Meta decodes message i of a receive batch: the sender's address, the
// IPV6_PKTINFO destination and interface, and the IPV6_TCLASS.
func (m *MsgBatch) Meta(i int, out *RxMeta) {
	h := &m.Hdrs[i]
	out.Src = m.names[i].Addr
	out.Trunc = h.Hdr.Flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0
	out.Dst, out.ifindex, out.Tclass = [16]byte{}, 0, 0
	oob := m.oob[i*oobSpace : i*oobSpace+int(h.Hdr.Controllen)]
	for len(oob) >= unix.SizeofCmsghdr {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(c.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return
		}
		data := oob[unix.SizeofCmsghdr:l]
		if c.Level == unix.IPPROTO_IPV6 {
			switch {
			case c.Type == unix.IPV6_PKTINFO && len(data) >= 20:
				copy(out.Dst[:], data[:16])
				out.ifindex = int(binary.NativeEndian.Uint32(data[16:20]))
			case c.Type == unix.IPV6_TCLASS && len(data) >= 4:
				out.Tclass = uint8(binary.NativeEndian.Uint32(data[:4]))
			}
		}
		al := (l + 7) &^ 7 // CMSG_ALIGN on 64-bit; 32-bit hosts align to 4
		if unsafe.Sizeof(uintptr(0)) == 4 {
			al = (l + 3) &^ 3
		}
		if al >= len(oob) {
			return
		}
		oob = oob[al:]
	}
}
