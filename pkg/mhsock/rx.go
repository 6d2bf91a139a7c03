package mhsock

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mcoad/mcoad/pkg/netmon"
	"github.com/mcoad/mcoad/pkg/proto"
)

// Packet types of sockaddr_ll (linux/if_packet.h).
const (
	packetHost     = 0
	packetOutgoing = 4
)

// addrSet is an immutable view of this namespace's addresses and links,
// derived from a netmon.State when the receive or send path first needs it
// after a change, and read without locks.
type addrSet struct {
	from *netmon.State // nil: set by a test

	// owner maps addresses other than link-local ones to the index of the
	// interface holding them.
	owner map[netip.Addr]int
	// linkLocal holds link-local addresses with their interface.
	linkLocal map[llKey]struct{}
	// names maps interface indexes to names; loopback marks loopbacks.
	names    map[int]string
	loopback map[int]bool
}

type llKey struct {
	addr    netip.Addr
	ifindex int
}

// local reports whether a, arriving on ifindex, is one of our addresses.
func (s *addrSet) local(a netip.Addr, ifindex int) bool {
	if s == nil {
		return false
	}
	if a.IsLinkLocalUnicast() {
		_, ok := s.linkLocal[llKey{a, ifindex}]
		return ok
	}
	_, ok := s.owner[a]
	return ok
}

// counters are the Stats, updated atomically by the receive and send paths.
type counters struct {
	received, sent, sendErrors              atomic.Uint64
	outgoing, notLocal, checksum, malformed atomic.Uint64
	notMH, tooLong                          atomic.Uint64
}

// rx is the Go side of the receive path: what happens to a packet that the
// BPF filter let through. It is separate from the sockets so that tests and
// benchmarks drive it directly.
type rx struct {
	prof  *proto.Profile
	mon   *netmon.Monitor // nil in tests that set addrs
	addrs atomic.Pointer[addrSet]
	extra []netip.Addr // Config.Local
	cnt   counters
}

// set returns the addresses and links of the monitor's latest State.
func (x *rx) set() *addrSet {
	s := x.addrs.Load()
	if x.mon == nil {
		return s
	}
	if st := x.mon.Current(); s == nil || s.from != st {
		s = newAddrSet(st)
		x.addrs.Store(s)
	}
	return s
}

// refreshTimeout bounds the wait for the monitor to read everything again.
const refreshTimeout = time.Second

// refresh reads the kernel's state again at once: a packet may come on an
// interface, or a caller send from an address, newer than the last
// notification read.
func (x *rx) refresh() (*addrSet, bool) {
	if x.mon == nil {
		return x.addrs.Load(), false
	}
	ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
	defer cancel()
	if err := x.mon.Refresh(ctx); err != nil {
		return x.set(), false
	}
	return x.set(), true
}

// accept decides on the n octets in r.buf that arrived on ifindex with the
// given sockaddr_ll packet type, fills r and reports whether to deliver it.
// It never panics on bad input; every drop is counted.
func (x *rx) accept(r *Received, n, ifindex int, pkttype uint8) bool {
	if pkttype == packetOutgoing {
		// Our own transmissions: PACKET_IGNORE_OUTGOING drops them in the
		// kernel where available; this covers older kernels.
		x.cnt.outgoing.Add(1)
		return false
	}
	if n > len(r.buf) {
		x.cnt.tooLong.Add(1)
		return false
	}
	b := r.buf[:n]
	if len(b) < proto.IPv6HeaderLen || b[0]>>4 != 6 {
		x.cnt.malformed.Add(1)
		return false
	}
	set := x.set()
	dst := netip.AddrFrom16([16]byte(b[24:40]))
	if !set.local(dst, ifindex) && !slices.Contains(x.extra, dst) {
		x.cnt.notLocal.Add(1)
		return false
	}
	r.Raw = b
	r.Ifindex = ifindex
	name, ok := set.names[ifindex]
	if !ok {
		if set, ok = x.refresh(); ok {
			name = set.names[ifindex]
		}
	}
	r.IfName = name
	r.Err = nil
	err := proto.ParsePacket(b, &r.Packet, x.prof)
	bu := r.Packet.MH.Type == proto.TypeBU && r.Packet.MHBytes != nil
	if bu && errors.Is(err, proto.ErrOptionLength) {
		err = x.badBIDLengths(b, &r.Packet, err)
	}
	if err != nil {
		var bidErr *proto.BIDError
		switch {
		case errors.As(err, &bidErr):
			// Parsed completely; the receiver answers per BID.
			r.Err = err
		case errors.Is(err, proto.ErrUnknownType):
			// Delivered so that the receiver can send a Binding Error.
			r.Err = err
		case bu && errors.Is(err, proto.ErrBadPrefix):
			// A mobile router's prefix length over 128: its home
			// agent answers 141 (RFC 3963 6.1.2).
			r.Err = err
		case errors.Is(err, proto.ErrChecksum):
			x.cnt.checksum.Add(1)
			return false
		case errors.Is(err, proto.ErrNotMH):
			x.cnt.notMH.Add(1)
			return false
		default:
			x.cnt.malformed.Add(1)
			return false
		}
	}
	x.cnt.received.Add(1)
	return true
}

func (x *rx) stats() Stats {
	c := &x.cnt
	return Stats{
		Received:   c.received.Load(),
		Sent:       c.sent.Load(),
		SendErrors: c.sendErrors.Load(),
		Outgoing:   c.outgoing.Load(),
		NotLocal:   c.notLocal.Load(),
		Checksum:   c.checksum.Load(),
		Malformed:  c.malformed.Load(),
		NotMH:      c.notMH.Load(),
		TooLong:    c.tooLong.Load(),
	}
}

// ensureBuf gives r its receive buffer on first use.
func (r *Received) ensureBuf() {
	if len(r.buf) < MaxPacket {
		r.buf = make([]byte, MaxPacket)
	}
}
