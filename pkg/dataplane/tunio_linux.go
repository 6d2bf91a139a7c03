package dataplane

import (
	"log/slog"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// tunReader reads the packets the kernel routes into a TUN device and
// leaves each with headroom in front for the outer header. With offloads it
// reads one (super-)packet per read and cuts TSO packets into segments;
// without, it reads a batch of packets straight into the slots.
type tunReader struct {
	dev   *tunDevice
	pkts  [][]byte // pkts[i][:headroom] is room, then sizes[i] bytes of packet
	sizes []int
	views [][]byte
	big   []byte // offloads: headroom, then the virtio header and packet overlapping it
	hdr   virtioNetHdr

	// An unfinished super-packet (more segments than slots).
	pending     []byte
	pendingNext int
}

func newTunReader(dev *tunDevice) *tunReader {
	r := &tunReader{dev: dev, pkts: make([][]byte, batchSize), sizes: make([]int, batchSize), views: make([][]byte, batchSize)}
	if dev.vnet {
		r.big = make([]byte, headroom+maxPacket+ipv6HeaderLen)
	}
	return r
}

// read fills r.pkts and r.sizes with at least one packet, using slots for
// batch reads and segments. A size larger than len(pkts[i])-headroom means
// the packet was cut (it is too big in any case).
func (r *tunReader) read(slots [][]byte, mtu int) (int, error) {
	if !r.dev.vnet {
		for i := range slots {
			r.views[i] = slots[i][headroom:]
		}
		n, err := r.dev.readBatch(r.views[:len(slots)], r.sizes)
		for i := range n {
			r.pkts[i] = slots[i]
		}
		return n, err
	}
	for {
		if r.pending != nil {
			n, more, err := gsoSplit(r.pending, &r.hdr, r.pendingNext, slots, r.sizes)
			if err != nil || !more {
				r.pending = nil
			} else {
				r.pendingNext += n
			}
			if n > 0 {
				copy(r.pkts, slots[:n])
				return n, nil
			}
			continue
		}
		// The virtio header lands in the last bytes of the headroom, so
		// a plain packet starts at headroom and needs no copy.
		view := r.big[headroom-virtioNetHdrLen:]
		r.views[0] = view
		if _, err := r.dev.readBatch(r.views[:1], r.sizes); err != nil {
			return 0, err
		}
		size := r.sizes[0]
		if size < virtioNetHdrLen || size > len(view) {
			continue
		}
		r.hdr.decode(view)
		pkt := view[virtioNetHdrLen:size]
		if r.hdr.gsoType != vnetGSONone {
			cs := int(r.hdr.csumStart)
			if cs+13 < len(pkt) && cs+int(pkt[cs+12]>>4)*4+int(r.hdr.gsoSize) > mtu {
				// Segments that do not fit the tunnel (its MTU just
				// shrank): pass the whole packet on as too big, so
				// that TCP hears of the new MTU.
				r.pkts[0], r.sizes[0] = r.big, len(pkt)
				return 1, nil
			}
			r.pending, r.pendingNext = pkt, 0
			continue
		}
		if r.hdr.flags&vnetNeedsCsum != 0 {
			if finishCsum(pkt, &r.hdr) != nil {
				continue
			}
		}
		r.pkts[0] = r.big
		r.sizes[0] = len(pkt)
		return 1, nil
	}
}

// tunWriter writes decapsulated packets into TUN devices, merging TCP
// segments for devices with offloads. Buffers passed to add have
// virtioNetHdrLen bytes of room in front of the packet and must stay
// untouched until flush.
type tunWriter struct {
	gro   *groBatch[*tunDevice]
	errs  int
	slots [][]byte // segments of a kernel-merged packet for a device without offloads
	sizes []int
}

func newTunWriter() *tunWriter { return &tunWriter{gro: newGROBatch[*tunDevice](rxBatch)} }

// add queues a packet that came through a tunnel of MTU mtu. It returns
// false for a packet that must be dropped (an oversized TCP packet with a
// broken checksum).
func (w *tunWriter) add(dev *tunDevice, buf []byte, mtu int) bool {
	pkt := buf[virtioNetHdrLen:]
	h, merged, bad := mergedByKernel(pkt, mtu)
	if bad {
		return false
	}
	if !dev.vnet {
		if merged {
			w.writeSegments(dev, pkt, &h)
			return true
		}
		if _, err := dev.write(pkt); err != nil {
			w.errs++
		}
		return true
	}
	if merged {
		w.gro.addMerged(dev, buf, h)
	} else {
		w.gro.add(dev, buf)
	}
	return true
}

// writeSegments cuts a kernel-merged packet for a device that takes only
// plain packets.
func (w *tunWriter) writeSegments(dev *tunDevice, pkt []byte, h *virtioNetHdr) {
	if need := headroom + int(h.hdrLen) + int(h.gsoSize); len(w.slots) == 0 || len(w.slots[0]) < need {
		w.slots, w.sizes = makeSlots(batchSize, need), make([]int, batchSize)
	}
	for first := 0; ; {
		n, more, err := gsoSplit(pkt, h, first, w.slots, w.sizes)
		if err != nil {
			w.errs++
			return
		}
		for i := range n {
			if _, err := dev.write(w.slots[i][headroom : headroom+w.sizes[i]]); err != nil {
				w.errs++
			}
		}
		if !more {
			return
		}
		first += n
	}
}

// flush writes what add queued and returns how many writes failed.
func (w *tunWriter) flush() int {
	w.gro.each(w.write)
	w.gro.reset()
	n := w.errs
	w.errs = 0
	return n
}

func (w *tunWriter) write(dev *tunDevice, b []byte) {
	if _, err := dev.write(b); err != nil {
		w.errs++
	}
}

// packet returns packet i of the last read: its slot (the packet at
// headroom), its size, and whether it is an IPv6 packet at all.
func (r *tunReader) packet(i int) (buf []byte, size int, ok bool) {
	buf, size = r.pkts[i], r.sizes[i]
	return buf, size, size >= ipv6HeaderLen && buf[headroom]>>4 == 6
}

// sendPTB answers a packet too big for mtu with an ICMPv6 Packet Too Big
// from src written into dev, as a router on the path would (RFC 4443 3.2),
// so that path MTU discovery works through the tunnel. buf has room for the
// virtio header in front.
func sendPTB(dev *tunDevice, drops *dropCounters, buf, pkt []byte, mtu int, src *[16]byte) {
	drops.tooBig.Add(1)
	m := buildPTB(buf[virtioNetHdrLen:], pkt, mtu, src)
	out := buf[virtioNetHdrLen : virtioNetHdrLen+m]
	if dev.vnet {
		clear(buf[:virtioNetHdrLen])
		out = buf[:virtioNetHdrLen+m]
	}
	if _, err := dev.write(out); err != nil {
		drops.writeErr.Add(1)
	}
}

// rxPipe is what every receiving loop uses: a batch of slots, each with
// room for a virtio header in front of the packet, and a tunWriter for the
// packets that go on into TUN devices.
type rxPipe struct {
	rb   *msgBatch
	bufs [][]byte // message i lands at bufs[i][virtioNetHdrLen:]
	wr   *tunWriter
	lim  errLimiter
}

// newRxPipe makes a pipe of rxBatch slots of slot octets; names and oob as
// for newMsgBatch.
func newRxPipe(slot int, names, oob bool) *rxPipe {
	r := &rxPipe{rb: newMsgBatch(rxBatch, names, oob), bufs: makeSlots(rxBatch, slot), wr: newTunWriter()}
	for i := range r.bufs {
		r.rb.set(i, r.bufs[i][virtioNetHdrLen:])
	}
	return r
}

// run receives batches on s until stop is set (see errLimiter.retry),
// hands each to batch (n messages), and then writes what batch queued on
// wr into the devices, counting the writes that failed in drops.
func (r *rxPipe) run(s *rawSocket, stop *atomic.Bool, log *slog.Logger, what string, drops *dropCounters, batch func(n int)) {
	for {
		n, err := s.recv(r.rb)
		if err != nil {
			if !r.lim.retry(stop, log, what, err) {
				return
			}
			continue
		}
		batch(n)
		if errs := r.wr.flush(); errs > 0 {
			drops.writeErr.Add(uint64(errs))
		}
	}
}

// packet returns message i of the batch, or nil when it was cut (it did
// not fit its slot).
func (r *rxPipe) packet(i int) []byte {
	h := &r.rb.hdrs[i]
	size := int(h.Len)
	if h.Hdr.Flags&unix.MSG_TRUNC != 0 || virtioNetHdrLen+size > len(r.bufs[i]) {
		return nil
	}
	return r.bufs[i][virtioNetHdrLen : virtioNetHdrLen+size]
}
