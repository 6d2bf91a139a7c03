package liveness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// ICMPProber sends the probes on raw ICMPv6 sockets and reads the answers.
// A care-of address's probe carries the data plane's bypass mark and is
// pinned to its interface (IPV6_PKTINFO), so it leaves as the BID's tunnel
// packets do: from the care-of address, out of that interface, routed by
// the main table. The home check goes on an unmarked socket, so that the
// home address's policy routing puts it into a tunnel.
type ICMPProber struct {
	marked, plain *ipv6.PacketConn
	mc, pc        net.PacketConn
}

// ListenICMP opens the sockets; mark is the data plane's bypass mark (0:
// none, for a node without policy routing).
func ListenICMP(mark uint32) (*ICMPProber, error) {
	open := func(mark uint32) (net.PacketConn, *ipv6.PacketConn, error) {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			if mark == 0 {
				return nil
			}
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			}); err != nil {
				return err
			}
			return serr
		}}
		c, err := lc.ListenPacket(context.Background(), "ip6:ipv6-icmp", "::")
		if err != nil {
			return nil, nil, fmt.Errorf("liveness: ICMPv6 socket: %w", err)
		}
		return c, ipv6.NewPacketConn(c), nil
	}
	mc, marked, err := open(mark)
	if err != nil {
		return nil, err
	}
	pc, plain, err := open(0)
	if err != nil {
		mc.Close()
		return nil, err
	}
	p := &ICMPProber{marked: marked, plain: plain, mc: mc, pc: pc}
	// Only echo replies reach the reading socket; the other reads nothing
	// (raw sockets each get a copy of every ICMPv6 message).
	var only, none ipv6.ICMPFilter
	only.SetAll(true)
	only.Accept(ipv6.ICMPTypeEchoReply)
	none.SetAll(true)
	if err := errors.Join(marked.SetICMPFilter(&only), plain.SetICMPFilter(&none)); err != nil {
		p.Close()
		return nil, fmt.Errorf("liveness: ICMPv6 filter: %w", err)
	}
	return p, nil
}

// Probe sends one echo request (8 bytes of ICMPv6, no payload: 48 bytes
// on the wire with the IPv6 header).
func (p *ICMPProber) Probe(ifindex int, src, dst netip.Addr, id, seq uint16) error {
	msg := icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: int(id), Seq: int(seq)}}
	b, err := msg.Marshal(nil) // the kernel fills in the ICMPv6 checksum
	if err != nil {
		return err
	}
	conn := p.marked
	if ifindex == 0 {
		conn = p.plain
	}
	cm := &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: ifindex}
	_, err = conn.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()})
	return err
}

// Run reads echo replies and hands each to handle with its identifier,
// sequence number and time of arrival, until ctx ends.
func (p *ICMPProber) Run(ctx context.Context, handle func(id, seq uint16, at time.Time)) error {
	stop := context.AfterFunc(ctx, func() { p.mc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 1500)
	for {
		n, _, _, err := p.marked.ReadFrom(buf)
		at := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("liveness: reading ICMPv6: %w", err)
		}
		// Type, code, checksum, identifier, sequence.
		if n < 8 || buf[0] != byte(ipv6.ICMPTypeEchoReply) {
			continue
		}
		handle(uint16(buf[4])<<8|uint16(buf[5]), uint16(buf[6])<<8|uint16(buf[7]), at)
	}
}

// Close closes the sockets.
func (p *ICMPProber) Close() error {
	return errors.Join(p.mc.Close(), p.pc.Close())
}
