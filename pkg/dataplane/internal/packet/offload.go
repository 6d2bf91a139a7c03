package packet

import (
	"encoding/binary"
	"errors"

	"github.com/mcoad/mcoad/pkg/dataplane"
)

// TUN offloads (IFF_VNET_HDR): the kernel hands the data plane TCP
// super-packets of up to 64 KiB with a partial checksum (TSO), and takes
// coalesced ones back (GRO), so that a bulk TCP flow costs one TUN read or
// write per 64 KiB instead of one per segment. The outer packets on the
// wire are ordinary segments: gsoSplit cuts the super-packets before
// encapsulation, groBatch glues received segments after decapsulation.

// batchSize is how many packets one sendmmsg or TUN read batch moves; 64
// covers the segments of a 64 KiB TSO packet at MTU 1280.
const BatchSize = 64

// virtio_net_hdr values (include/uapi/linux/virtio_net.h).
const (
	VnetNeedsCsum = 1
	VnetGSONone   = 0
	vnetGSOTCPv6  = 4
	vnetGSOECN    = 0x80
)

const (
	tcpFIN     = 0x01
	tcpPSH     = 0x08
	TCPFlagACK = 0x10
	tcpCWR     = 0x80
)

var errGSO = &PacketError{"segment", errors.New("bad TSO packet")}

// FinishCsum completes a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM):
// the field holds the pseudo-header's sum, and the checksum covers
// everything from csumStart.
func FinishCsum(pkt []byte, h *VirtioNetHdr) error {
	s, o := int(h.CsumStart), int(h.csumOffset)
	if s < dataplane.IPv6HeaderLen || s+o+2 > len(pkt) {
		return errGSO
	}
	c := ^csumFold(csumAdd(0, pkt[s:]))
	if c == 0 && o == 6 { // UDP sends a zero checksum as all ones
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[s+o:], c)
	return nil
}

// GSOSplit cuts a TCP/IPv6 super-packet into segments of h.gsoSize payload
// bytes, each written at slots[i][headroom:] with its length in sizes[i]
// and a full checksum, starting with segment first. It returns how many
// segments it wrote and whether more remain (when there were more than
// slots).
func GSOSplit(pkt []byte, h *VirtioNetHdr, first int, slots [][]byte, sizes []int) (n int, more bool, err error) {
	if h.GSOType&^vnetGSOECN != vnetGSOTCPv6 || h.GSOSize == 0 {
		return 0, false, errGSO
	}
	cs := int(h.CsumStart)
	if cs < dataplane.IPv6HeaderLen || cs+20 > len(pkt) {
		return 0, false, errGSO
	}
	thl := int(pkt[cs+12]>>4) * 4
	hl := cs + thl
	if thl < 20 || hl > len(pkt) {
		return 0, false, errGSO
	}
	mss := int(h.GSOSize)
	seq := binary.BigEndian.Uint32(pkt[cs+4:])
	flags := pkt[cs+13]
	total := max((len(pkt)-hl+mss-1)/mss, 1)
	for i := first; i < total && n < len(slots); i++ {
		off := hl + i*mss
		end := min(off+mss, len(pkt))
		segLen := hl + end - off
		seg := slots[n][Headroom:]
		if segLen > len(seg) {
			return n, false, errGSO
		}
		copy(seg, pkt[:hl])
		copy(seg[hl:], pkt[off:end])
		seg = seg[:segLen]
		binary.BigEndian.PutUint16(seg[4:6], uint16(segLen-dataplane.IPv6HeaderLen))
		tcp := seg[cs:]
		binary.BigEndian.PutUint32(tcp[4:], seq+uint32(i*mss))
		f := flags
		if i > 0 {
			f &^= tcpCWR
		}
		if i < total-1 {
			f &^= tcpFIN | tcpPSH
		}
		tcp[13] = f
		tcp[16], tcp[17] = 0, 0
		sum := pseudoSum(seg[8:24], seg[24:40], ProtoTCP, segLen-cs)
		binary.BigEndian.PutUint16(tcp[16:], ^csumFold(csumAdd(sum, tcp)))
		sizes[n] = segLen
		n++
		more = i+1 < total
	}
	return n, more, nil
}

// GROBatch coalesces the TCP segments of one receive batch that continue
// each other into super-packets for a TUN device with IFF_VNET_HDR, the
// way the kernel's own GRO does: same flow, addresses, traffic class, flow
// label, hop limit, acknowledgement, window and options; consecutive
// sequence numbers; equal sizes but for a shorter last one; only ACK and a
// final PSH. Every segment's checksum is verified before it is merged,
// since the merged packet's is not checked again. D is the device the
// packets go to; packets keep their order within a flow.
type GROBatch[D comparable] struct {
	items []groItem[D]
	bigs  [][]byte // coalescing buffers
	nbig  int
}

type groItem[D comparable] struct {
	dev     D
	buf     []byte // virtioNetHdrLen bytes of room, then the packet
	flow    bool   // TCP with ports: can close or take merges
	open    bool   // may take more segments
	hl      int    // IPv6 + TCP header length
	mss     int
	nextSeq uint32
	segs    int
	preset  *VirtioNetHdr // addMerged: the header to write
}

const groMax = 65535 // the IPv6 payload length of a merged packet must fit

func NewGROBatch[D comparable](n int) *GROBatch[D] {
	g := &GROBatch[D]{items: make([]groItem[D], 0, n)}
	g.bigs = MakeSlots(8, VirtioNetHdrLen+dataplane.IPv6HeaderLen+groMax)
	return g
}

func (g *GROBatch[D]) Reset() {
	clear(g.items)
	g.items = g.items[:0]
	g.nbig = 0
}

// tcpSegment reports whether pkt is a plain TCP/IPv6 segment that may be
// merged, and its header length and payload length.
func tcpSegment(pkt []byte) (flow, mergeable bool, hl, payload int) {
	if len(pkt) < dataplane.IPv6HeaderLen+20 || pkt[6] != ProtoTCP {
		return false, false, 0, 0
	}
	hl = dataplane.IPv6HeaderLen + int(pkt[dataplane.IPv6HeaderLen+12]>>4)*4
	if hl < dataplane.IPv6HeaderLen+20 || hl > len(pkt) {
		return false, false, 0, 0
	}
	flags := pkt[dataplane.IPv6HeaderLen+13]
	payload = len(pkt) - hl
	mergeable = payload > 0 && flags&^(TCPFlagACK|tcpPSH) == 0 && flags&TCPFlagACK != 0 &&
		trafficClass(pkt)&3 != 3 // a CE mark must reach TCP on its own segment
	return true, mergeable, hl, payload
}

func sameFlow(a, b []byte) bool {
	return [36]byte(a[8:44]) == [36]byte(b[8:44]) // addresses and ports
}

func tcpChecksumOK(pkt []byte) bool {
	sum := pseudoSum(pkt[8:24], pkt[24:40], ProtoTCP, len(pkt)-dataplane.IPv6HeaderLen)
	return csumFold(csumAdd(sum, pkt[dataplane.IPv6HeaderLen:])) == 0xffff
}

// Add queues buf (virtioNetHdrLen bytes of room, then an IPv6 packet whose
// length is exact) for dev, merging it into an earlier segment when it can.
func (g *GROBatch[D]) Add(dev D, buf []byte) {
	pkt := buf[VirtioNetHdrLen:]
	flow, mergeable, hl, payload := tcpSegment(pkt)
	if flow {
		for i := len(g.items) - 1; i >= 0; i-- {
			it := &g.items[i]
			if !it.flow || it.dev != dev || !sameFlow(it.buf[VirtioNetHdrLen:], pkt) {
				continue
			}
			if it.open && mergeable && g.merge(it, pkt, hl, payload) {
				return
			}
			it.open = false // later segments must not overtake this one
			break
		}
	}
	it := groItem[D]{dev: dev, buf: buf, flow: flow, open: mergeable, hl: hl, mss: payload, segs: 1}
	if mergeable {
		it.nextSeq = binary.BigEndian.Uint32(pkt[dataplane.IPv6HeaderLen+4:]) + uint32(payload)
		it.open = pkt[dataplane.IPv6HeaderLen+13]&tcpPSH == 0
	}
	g.items = append(g.items, it)
}

// closeFlow stops merges into the last item of pkt's flow, so that what
// comes next is not overtaken.
func (g *GROBatch[D]) closeFlow(dev D, pkt []byte) {
	for i := len(g.items) - 1; i >= 0; i-- {
		it := &g.items[i]
		if it.flow && it.dev == dev && sameFlow(it.buf[VirtioNetHdrLen:], pkt) {
			it.open = false
			return
		}
	}
}

// AddMerged queues a packet that is already a TCP super-packet (merged by
// the kernel's GRO on the way in) with its virtio header.
func (g *GROBatch[D]) AddMerged(dev D, buf []byte, h VirtioNetHdr) {
	pkt := buf[VirtioNetHdrLen:]
	g.closeFlow(dev, pkt)
	g.items = append(g.items, groItem[D]{dev: dev, buf: buf, flow: true, segs: 1, preset: &h})
}

// MergedByKernel recognizes a TCP super-packet that the receiving host's
// GRO built from IPv6-in-IPv6 segments before our raw socket got it: it is
// larger than the tunnel MTU and carries the partial checksum (the
// pseudo-header's sum) that GRO leaves. It returns the virtio header that
// hands it to a TUN device as a super-packet with segments of at most mtu
// bytes. ok is false for any other packet; bad is true for an oversized
// TCP packet whose checksum is neither partial nor complete.
func MergedByKernel(pkt []byte, mtu int) (h VirtioNetHdr, ok, bad bool) {
	if len(pkt) <= mtu {
		return h, false, false
	}
	flow, _, hl, payload := tcpSegment(pkt)
	if !flow || payload == 0 || hl >= mtu {
		return h, false, false
	}
	tcpLen := len(pkt) - dataplane.IPv6HeaderLen
	ps := csumFold(pseudoSum(pkt[8:24], pkt[24:40], ProtoTCP, tcpLen))
	if field := binary.BigEndian.Uint16(pkt[dataplane.IPv6HeaderLen+16:]); field != ps && !(field == 0 && ps == 0xffff) {
		return h, false, !tcpChecksumOK(pkt)
	}
	return VirtioNetHdr{
		Flags: VnetNeedsCsum, GSOType: vnetGSOTCPv6, HdrLen: uint16(hl), GSOSize: uint16(mtu - hl),
		CsumStart: dataplane.IPv6HeaderLen, csumOffset: 16,
	}, true, false
}

func (g *GROBatch[D]) merge(it *groItem[D], pkt []byte, hl, payload int) bool {
	head := it.buf[VirtioNetHdrLen:]
	const t = dataplane.IPv6HeaderLen
	if hl != it.hl || payload > it.mss ||
		binary.BigEndian.Uint32(pkt[t+4:]) != it.nextSeq ||
		len(head)+payload > dataplane.IPv6HeaderLen+groMax ||
		[4]byte(pkt[0:4]) != [4]byte(head[0:4]) || pkt[7] != head[7] || // class, label, hop limit
		[4]byte(pkt[t+8:t+12]) != [4]byte(head[t+8:t+12]) || // ack
		[2]byte(pkt[t+14:t+16]) != [2]byte(head[t+14:t+16]) || // window
		string(pkt[t+20:hl]) != string(head[t+20:hl]) { // options
		return false
	}
	if !tcpChecksumOK(pkt) {
		return false
	}
	if it.segs == 1 {
		if g.nbig == len(g.bigs) || !tcpChecksumOK(head) {
			return false
		}
		big := g.bigs[g.nbig]
		g.nbig++
		n := copy(big, it.buf)
		it.buf = big[:n]
		head = it.buf[VirtioNetHdrLen:]
	}
	n := len(it.buf)
	it.buf = it.buf[:n+payload]
	copy(it.buf[n:], pkt[hl:])
	it.segs++
	it.nextSeq += uint32(payload)
	if pkt[t+13]&tcpPSH != 0 {
		head[t+13] |= tcpPSH
		it.open = false
	}
	if payload < it.mss {
		it.open = false
	}
	return true
}

// Each finishes the batch's packets (virtio headers, merged lengths and
// checksums) and hands them to write in order, virtio header included.
func (g *GROBatch[D]) Each(write func(dev D, b []byte)) {
	for i := range g.items {
		it := &g.items[i]
		hdr := VirtioNetHdr{}
		if it.preset != nil {
			hdr = *it.preset
		} else if it.segs > 1 {
			pkt := it.buf[VirtioNetHdrLen:]
			binary.BigEndian.PutUint16(pkt[4:6], uint16(len(pkt)-dataplane.IPv6HeaderLen))
			// A partial checksum: the pseudo-header's sum, which the
			// kernel takes as checked (CHECKSUM_PARTIAL).
			ps := csumFold(pseudoSum(pkt[8:24], pkt[24:40], ProtoTCP, len(pkt)-dataplane.IPv6HeaderLen))
			binary.BigEndian.PutUint16(pkt[dataplane.IPv6HeaderLen+16:], ps)
			hdr = VirtioNetHdr{
				Flags: VnetNeedsCsum, GSOType: vnetGSOTCPv6,
				HdrLen: uint16(it.hl), GSOSize: uint16(it.mss),
				CsumStart: dataplane.IPv6HeaderLen, csumOffset: 16,
			}
		}
		hdr.encode(it.buf)
		write(it.dev, it.buf)
	}
}

// VirtioNetHdr is the header IFF_VNET_HDR puts in front of every packet
// (struct virtio_net_hdr; little-endian on every host we build for, as
// TUNSETVNETLE is not used).
type VirtioNetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	csumOffset uint16
}

const VirtioNetHdrLen = 10

func (h *VirtioNetHdr) Decode(b []byte) {
	h.Flags, h.GSOType = b[0], b[1]
	h.HdrLen = binary.LittleEndian.Uint16(b[2:])
	h.GSOSize = binary.LittleEndian.Uint16(b[4:])
	h.CsumStart = binary.LittleEndian.Uint16(b[6:])
	h.csumOffset = binary.LittleEndian.Uint16(b[8:])
}

func (h *VirtioNetHdr) encode(b []byte) {
	b[0], b[1] = h.Flags, h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.csumOffset)
}

// MakeSlots makes n buffers of size bytes in one allocation.
func MakeSlots(n, size int) [][]byte {
	buf := make([]byte, n*size)
	s := make([][]byte, n)
	for i := range s {
		s[i] = buf[i*size : (i+1)*size : (i+1)*size]
	}
	return s
}
