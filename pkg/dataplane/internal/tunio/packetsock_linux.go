package tunio

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// SetPktinfo pins message i of a send batch to interface ifindex (an
// IPV6_PKTINFO with an unspecified source: the packet carries its own).
func (m *MsgBatch) SetPktinfo(i, ifindex int) {
	b := m.oob[i*oobSpace : i*oobSpace+unix.CmsgSpace(unix.SizeofInet6Pktinfo)]
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	binary.NativeEndian.PutUint32(b[unix.CmsgLen(0)+16:], uint32(ifindex))
	m.Hdrs[i].Hdr.SetControllen(len(b))
}

// PacketSocketSlot holds a packet received on a packet socket (route
// optimisation's): no GRO merges packets with extension headers, so the
// largest is a jumbo frame.
const PacketSocketSlot = packet.VirtioNetHdrLen + MaxOuter

// NewPacketSocket opens a cooked AF_PACKET socket for IPv6 on every
// interface with filter attached before it receives anything, in the
// calling thread's namespace. It receives with rawSocket.recv.
func NewPacketSocket(filter []bpf.Instruction) (*RawSocket, error) {
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
	fail := func(what string, err error) (*RawSocket, error) {
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
