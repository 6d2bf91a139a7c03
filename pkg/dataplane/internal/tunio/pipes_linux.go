package tunio

import (
	"log/slog"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
)

// TunReader reads the packets the kernel routes into a TUN device and
// leaves each with headroom in front for the outer header. With offloads it
// reads one (super-)packet per read and cuts TSO packets into segments;
// without, it reads a batch of packets straight into the slots.
type TunReader struct {
	Dev   *TunDevice
	pkts  [][]byte // pkts[i][:headroom] is room, then sizes[i] bytes of packet
	sizes []int
	views [][]byte
	big   []byte // offloads: headroom, then the virtio header and packet overlapping it
	hdr   packet.VirtioNetHdr

	// An unfinished super-packet (more segments than slots).
	pending     []byte
	pendingNext int
}

func NewTunReader(dev *TunDevice) *TunReader {
	r := &TunReader{Dev: dev, pkts: make([][]byte, packet.BatchSize), sizes: make([]int, packet.BatchSize), views: make([][]byte, packet.BatchSize)}
	if dev.vnet {
		r.big = make([]byte, packet.Headroom+dataplane.MaxPacket+dataplane.IPv6HeaderLen)
	}
	return r
}

// Read fills r.pkts and r.sizes with at least one packet, using slots for
// batch reads and segments. A size larger than len(pkts[i])-headroom means
// the packet was cut (it is too big in any case).
func (r *TunReader) Read(slots [][]byte, mtu int) (int, error) {
	if !r.Dev.vnet {
		for i := range slots {
			r.views[i] = slots[i][packet.Headroom:]
		}
		n, err := r.Dev.readBatch(r.views[:len(slots)], r.sizes)
		for i := range n {
			r.pkts[i] = slots[i]
		}
		return n, err
	}
	for {
		if r.pending != nil {
			n, more, err := packet.GSOSplit(r.pending, &r.hdr, r.pendingNext, slots, r.sizes)
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
		view := r.big[packet.Headroom-packet.VirtioNetHdrLen:]
		r.views[0] = view
		if _, err := r.Dev.readBatch(r.views[:1], r.sizes); err != nil {
			return 0, err
		}
		size := r.sizes[0]
		if size < packet.VirtioNetHdrLen || size > len(view) {
			continue
		}
		r.hdr.Decode(view)
		pkt := view[packet.VirtioNetHdrLen:size]
		if r.hdr.GSOType != packet.VnetGSONone {
			cs := int(r.hdr.CsumStart)
			if cs+13 < len(pkt) && cs+int(pkt[cs+12]>>4)*4+int(r.hdr.GSOSize) > mtu {
				// Segments that do not fit the tunnel (its MTU just
				// shrank): pass the whole packet on as too big, so
				// that TCP hears of the new MTU.
				r.pkts[0], r.sizes[0] = r.big, len(pkt)
				return 1, nil
			}
			r.pending, r.pendingNext = pkt, 0
			continue
		}
		if r.hdr.Flags&packet.VnetNeedsCsum != 0 {
			if packet.FinishCsum(pkt, &r.hdr) != nil {
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
	gro   *packet.GROBatch[*TunDevice]
	errs  int
	slots [][]byte // segments of a kernel-merged packet for a device without offloads
	sizes []int
}

func newTunWriter() *tunWriter { return &tunWriter{gro: packet.NewGROBatch[*TunDevice](rxBatch)} }

// Add queues a packet that came through a tunnel of MTU mtu. It returns
// false for a packet that must be dropped (an oversized TCP packet with a
// broken checksum).
func (w *tunWriter) Add(dev *TunDevice, buf []byte, mtu int) bool {
	pkt := buf[packet.VirtioNetHdrLen:]
	h, merged, bad := packet.MergedByKernel(pkt, mtu)
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
		w.gro.AddMerged(dev, buf, h)
	} else {
		w.gro.Add(dev, buf)
	}
	return true
}

// writeSegments cuts a kernel-merged packet for a device that takes only
// plain packets.
func (w *tunWriter) writeSegments(dev *TunDevice, pkt []byte, h *packet.VirtioNetHdr) {
	if need := packet.Headroom + int(h.HdrLen) + int(h.GSOSize); len(w.slots) == 0 || len(w.slots[0]) < need {
		w.slots, w.sizes = packet.MakeSlots(packet.BatchSize, need), make([]int, packet.BatchSize)
	}
	for first := 0; ; {
		n, more, err := packet.GSOSplit(pkt, h, first, w.slots, w.sizes)
		if err != nil {
			w.errs++
			return
		}
		for i := range n {
			if _, err := dev.write(w.slots[i][packet.Headroom : packet.Headroom+w.sizes[i]]); err != nil {
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
	w.gro.Each(w.write)
	w.gro.Reset()
	n := w.errs
	w.errs = 0
	return n
}

func (w *tunWriter) write(dev *TunDevice, b []byte) {
	if _, err := dev.write(b); err != nil {
		w.errs++
	}
}

// Packet returns packet i of the last read: its slot (the packet at
// headroom), its size, and whether it is an IPv6 packet at all.
func (r *TunReader) Packet(i int) (buf []byte, size int, ok bool) {
	buf, size = r.pkts[i], r.sizes[i]
	return buf, size, size >= dataplane.IPv6HeaderLen && buf[packet.Headroom]>>4 == 6
}

// SendPTB answers a packet too big for mtu with an ICMPv6 Packet Too Big
// from src written into dev, as a router on the path would (RFC 4443 3.2),
// so that path MTU discovery works through the tunnel. buf has room for the
// virtio header in front.
func SendPTB(dev *TunDevice, drops *DropCounters, buf, pkt []byte, mtu int, src *[16]byte) {
	drops.tooBig.Add(1)
	m := packet.BuildPTB(buf[packet.VirtioNetHdrLen:], pkt, mtu, src)
	out := buf[packet.VirtioNetHdrLen : packet.VirtioNetHdrLen+m]
	if dev.vnet {
		clear(buf[:packet.VirtioNetHdrLen])
		out = buf[:packet.VirtioNetHdrLen+m]
	}
	if _, err := dev.write(out); err != nil {
		drops.writeErr.Add(1)
	}
}

// rxPipe is what every receiving loop uses: a batch of slots, each with
// room for a virtio header in front of the packet, and a tunWriter for the
// packets that go on into TUN devices.
type rxPipe struct {
	Rb   *MsgBatch
	Bufs [][]byte // message i lands at bufs[i][virtioNetHdrLen:]
	Wr   *tunWriter
	lim  ErrLimiter
}

// NewRxPipe makes a pipe of rxBatch slots of slot octets; names and oob as
// for newMsgBatch.
func NewRxPipe(slot int, names, oob bool) *rxPipe {
	r := &rxPipe{Rb: NewMsgBatch(rxBatch, names, oob), Bufs: packet.MakeSlots(rxBatch, slot), Wr: newTunWriter()}
	for i := range r.Bufs {
		r.Rb.Set(i, r.Bufs[i][packet.VirtioNetHdrLen:])
	}
	return r
}

// Run receives batches on s until stop is set (see errLimiter.retry),
// hands each to batch (n messages), and then writes what batch queued on
// wr into the devices, counting the writes that failed in drops.
func (r *rxPipe) Run(s *RawSocket, stop *atomic.Bool, log *slog.Logger, what string, drops *DropCounters, batch func(n int)) {
	for {
		n, err := s.recv(r.Rb)
		if err != nil {
			if !r.lim.Retry(stop, log, what, err) {
				return
			}
			continue
		}
		batch(n)
		if errs := r.Wr.flush(); errs > 0 {
			drops.writeErr.Add(uint64(errs))
		}
	}
}

// Packet returns message i of the batch, or nil when it was cut (it did
// not fit its slot).
func (r *rxPipe) Packet(i int) []byte {
	h := &r.Rb.Hdrs[i]
	size := int(h.Len)
	if h.Hdr.Flags&unix.MSG_TRUNC != 0 || packet.VirtioNetHdrLen+size > len(r.Bufs[i]) {
		return nil
	}
	return r.Bufs[i][packet.VirtioNetHdrLen : packet.VirtioNetHdrLen+size]
}
