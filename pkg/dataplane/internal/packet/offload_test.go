package packet

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/mcoad/mcoad/internal/pkttest"
)

// tsoPacket is what the kernel hands a TUN device with TSO: one TCP packet
// with payload n bytes, the IPv6 payload length covering all of it, and
// the pseudo-header's sum in the checksum field.
func tsoPacket(n int, seq uint32, flags uint8) ([]byte, VirtioNetHdr) {
	pkt := pkttest.IP6(0x02, 0, ProtoTCP, 64, pkttest.THoA, pkttest.TCN, pkttest.TCPSeg(40000, 5201, seq, 77, flags, pkttest.Pattern(n, 5)))
	binary.BigEndian.PutUint16(pkt[40+16:], csumFold(pseudoSum(pkt[8:24], pkt[24:40], ProtoTCP, len(pkt)-40)))
	return pkt, VirtioNetHdr{Flags: VnetNeedsCsum, GSOType: vnetGSOTCPv6, HdrLen: 72, GSOSize: 1000, CsumStart: 40, csumOffset: 16}
}

func TestGSOSplit(t *testing.T) {
	pkt, h := tsoPacket(2500, 1000, TCPFlagACK|tcpPSH|tcpFIN|tcpCWR)
	slots := MakeSlots(4, Headroom+1100)
	sizes := make([]int, 4)
	n, more, err := GSOSplit(pkt, &h, 0, slots, sizes)
	if err != nil || n != 3 || more {
		t.Fatalf("n %d more %v err %v, want 3 segments", n, more, err)
	}
	payload := pkttest.Pattern(2500, 5)
	for i, want := range []struct {
		seq   uint32
		flags uint8
		n     int
	}{
		{1000, TCPFlagACK | tcpCWR, 1000},
		{2000, TCPFlagACK, 1000},
		{3000, TCPFlagACK | tcpPSH | tcpFIN, 500},
	} {
		seg := slots[i][Headroom : Headroom+sizes[i]]
		if sizes[i] != 72+want.n {
			t.Fatalf("segment %d: %d bytes, want %d", i, sizes[i], 72+want.n)
		}
		if pl := binary.BigEndian.Uint16(seg[4:]); int(pl) != sizes[i]-40 {
			t.Errorf("segment %d: payload length %d", i, pl)
		}
		if !bytes.Equal(seg[:4], pkt[:4]) || !bytes.Equal(seg[6:40], pkt[6:40]) {
			t.Errorf("segment %d: IPv6 header changed beyond the length", i)
		}
		if s := binary.BigEndian.Uint32(seg[44:]); s != want.seq {
			t.Errorf("segment %d: seq %d, want %d", i, s, want.seq)
		}
		if seg[53] != want.flags {
			t.Errorf("segment %d: flags %#x, want %#x", i, seg[53], want.flags)
		}
		if !bytes.Equal(seg[60:72], pkt[60:72]) {
			t.Errorf("segment %d: options changed", i)
		}
		off := int(want.seq - 1000)
		if !bytes.Equal(seg[72:], payload[off:off+want.n]) {
			t.Errorf("segment %d: payload differs", i)
		}
		if !pkttest.UpperChecksumOK(seg) {
			t.Errorf("segment %d: bad TCP checksum", i)
		}
	}

	// More segments than slots: the rest comes in the next call.
	n, more, err = GSOSplit(pkt, &h, 0, slots[:2], sizes)
	if err != nil || n != 2 || !more {
		t.Fatalf("n %d more %v err %v, want 2 and more", n, more, err)
	}
	n, more, err = GSOSplit(pkt, &h, 2, slots[:2], sizes)
	if err != nil || n != 1 || more || binary.BigEndian.Uint32(slots[0][Headroom+44:]) != 3000 {
		t.Fatalf("continuation: n %d more %v err %v", n, more, err)
	}

	// Refusals: not TCPv6, a checksum start inside the IPv6 header, no
	// segment size, slots too small.
	for name, bad := range map[string]VirtioNetHdr{
		"udp":       {GSOType: 3, GSOSize: 1000, CsumStart: 40, csumOffset: 6},
		"start":     {GSOType: vnetGSOTCPv6, GSOSize: 1000, CsumStart: 20, csumOffset: 16},
		"no size":   {GSOType: vnetGSOTCPv6, CsumStart: 40, csumOffset: 16},
		"too large": {GSOType: vnetGSOTCPv6, GSOSize: 1200, CsumStart: 40, csumOffset: 16},
	} {
		if _, _, err := GSOSplit(pkt, &bad, 0, slots, sizes); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestFinishCsum(t *testing.T) {
	for _, c := range []struct {
		proto uint8
		l4    []byte
		off   uint16
	}{
		{ProtoUDP, append([]byte{0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 0}, pkttest.Pattern(333, 9)...), 6},
		{ProtoTCP, pkttest.TCPSeg(1, 2, 3, 4, TCPFlagACK, pkttest.Pattern(100, 1)), 16},
	} {
		pkt := pkttest.IP6(0, 0, c.proto, 64, pkttest.THoA, pkttest.TCN, c.l4)
		binary.BigEndian.PutUint16(pkt[4+0:], uint16(len(c.l4)))
		binary.BigEndian.PutUint16(pkt[40+c.off:], csumFold(pseudoSum(pkt[8:24], pkt[24:40], c.proto, len(c.l4))))
		if c.proto == ProtoUDP {
			binary.BigEndian.PutUint16(pkt[44:], uint16(len(c.l4)))
			binary.BigEndian.PutUint16(pkt[40+c.off:], csumFold(pseudoSum(pkt[8:24], pkt[24:40], c.proto, len(c.l4))))
		}
		h := VirtioNetHdr{Flags: VnetNeedsCsum, CsumStart: 40, csumOffset: c.off}
		if err := FinishCsum(pkt, &h); err != nil {
			t.Fatal(err)
		}
		if !pkttest.UpperChecksumOK(pkt) {
			t.Errorf("protocol %d: checksum does not verify", c.proto)
		}
	}
	bad := VirtioNetHdr{Flags: VnetNeedsCsum, CsumStart: 40, csumOffset: 2000}
	if FinishCsum(make([]byte, 100), &bad) == nil {
		t.Error("offset past the end: no error")
	}
}

// rxBuf is a decapsulated packet as the receive path holds it.
func rxBuf(pkt []byte) []byte { return append(make([]byte, VirtioNetHdrLen), pkt...) }

type written struct {
	dev int
	hdr VirtioNetHdr
	pkt []byte
}

func collect(g *GROBatch[int]) []written {
	var out []written
	g.Each(func(dev int, b []byte) {
		var h VirtioNetHdr
		h.Decode(b)
		out = append(out, written{dev, h, append([]byte{}, b[VirtioNetHdrLen:]...)})
	})
	g.Reset()
	return out
}

// The segments of a TSO packet, cut by gsoSplit and merged again, give the
// original payload in one super-packet whose partial checksum the kernel
// can finish.
func TestGSOThenGRO(t *testing.T) {
	pkt, h := tsoPacket(5000, 1, TCPFlagACK|tcpPSH)
	slots := MakeSlots(8, Headroom+1100)
	sizes := make([]int, 8)
	n, _, err := GSOSplit(pkt, &h, 0, slots, sizes)
	if err != nil || n != 5 {
		t.Fatal(n, err)
	}
	g := NewGROBatch[int](64)
	for i := range n {
		g.Add(7, rxBuf(slots[i][Headroom:Headroom+sizes[i]]))
	}
	out := collect(g)
	if len(out) != 1 {
		t.Fatalf("%d packets written, want 1 merged", len(out))
	}
	w := out[0]
	if w.dev != 7 || w.hdr.GSOType != vnetGSOTCPv6 || w.hdr.GSOSize != 1000 || w.hdr.HdrLen != 72 ||
		w.hdr.Flags != VnetNeedsCsum || w.hdr.CsumStart != 40 || w.hdr.csumOffset != 16 {
		t.Fatalf("virtio header %+v", w.hdr)
	}
	if len(w.pkt) != len(pkt) || !bytes.Equal(w.pkt[72:], pkt[72:]) {
		t.Fatalf("merged packet of %d bytes, want %d with the same payload", len(w.pkt), len(pkt))
	}
	if int(binary.BigEndian.Uint16(w.pkt[4:])) != len(pkt)-40 || w.pkt[53] != TCPFlagACK|tcpPSH {
		t.Fatalf("merged header: length %d flags %#x", binary.BigEndian.Uint16(w.pkt[4:]), w.pkt[53])
	}
	// Finishing the partial checksum as the kernel would gives a valid one.
	if err := FinishCsum(w.pkt, &w.hdr); err != nil || !pkttest.UpperChecksumOK(w.pkt) {
		t.Fatalf("merged checksum: %v", err)
	}
}

func TestGROKeepsApart(t *testing.T) {
	seg := func(sport uint16, seq uint32, flags uint8, n int) []byte {
		return pkttest.IP6(0, 0, ProtoTCP, 64, pkttest.TCN, pkttest.THoA, pkttest.TCPSeg(sport, 40000, seq, 5, flags, pkttest.Pattern(n, byte(seq))))
	}
	corrupt := seg(1, 3000, TCPFlagACK, 1000)
	corrupt[100] ^= 0xff
	g := NewGROBatch[int](64)
	for _, p := range []struct {
		dev int
		pkt []byte
	}{
		{1, seg(1, 1000, TCPFlagACK, 1000)},      // 0: flow A starts
		{1, seg(2, 1000, TCPFlagACK, 1000)},      // 1: flow B
		{1, seg(1, 2000, TCPFlagACK, 1000)},      // merged into 0
		{2, seg(1, 3000, TCPFlagACK, 1000)},      // 2: same flow, other device
		{1, corrupt},                             // 3: bad checksum: alone, and closes A
		{1, seg(1, 4000, TCPFlagACK, 1000)},      // 4: after a packet that was not merged
		{1, seg(2, 3000, TCPFlagACK, 1000)},      // 5: B out of sequence
		{1, seg(2, 4000, TCPFlagACK|tcpFIN, 0)},  // 6: FIN: never merged
		{1, seg(3, 1, TCPFlagACK, 500)},          // 7: flow C
		{1, seg(3, 501, TCPFlagACK|tcpPSH, 500)}, // merged into 7, closes it
		{1, seg(3, 1001, TCPFlagACK, 500)},       // 8
		{1, pkttest.IP6(0, 0, ProtoUDP, 64, pkttest.TCN, pkttest.THoA, make([]byte, 20))}, // 9
	} {
		g.Add(p.dev, rxBuf(p.pkt))
	}
	out := collect(g)
	wantSegs := []int{2, 1, 1, 1, 1, 1, 1, 2, 1, 1}
	if len(out) != len(wantSegs) {
		t.Fatalf("%d packets written, want %d", len(out), len(wantSegs))
	}
	for i, w := range out {
		merged := w.hdr.GSOType == vnetGSOTCPv6
		if merged != (wantSegs[i] > 1) {
			t.Errorf("packet %d: merged %v, want %d segments", i, merged, wantSegs[i])
		}
		if !merged && (w.hdr != VirtioNetHdr{}) {
			t.Errorf("packet %d: header %+v for a plain packet", i, w.hdr)
		}
	}
	if out[2].dev != 2 || !bytes.Equal(out[3].pkt, corrupt) {
		t.Fatalf("order or devices wrong")
	}
	if got := binary.BigEndian.Uint16(out[7].pkt[4:]); got != 32+1000 || out[7].pkt[53] != TCPFlagACK|tcpPSH {
		t.Fatalf("flow C merged length %d flags %#x", got, out[7].pkt[53])
	}
}

func BenchmarkGSOSplit(b *testing.B) {
	pkt, h := tsoPacket(64000, 1, TCPFlagACK)
	h.GSOSize = 1388
	slots := MakeSlots(BatchSize, Headroom+1500)
	sizes := make([]int, BatchSize)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, _, err := GSOSplit(pkt, &h, 0, slots, sizes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGRO(b *testing.B) {
	var bufs [][]byte
	for i := range 45 {
		bufs = append(bufs, rxBuf(pkttest.IP6(0, 0, ProtoTCP, 64, pkttest.TCN, pkttest.THoA, pkttest.TCPSeg(5201, 40000, uint32(1+i*1388), 5, TCPFlagACK, pkttest.Pattern(1388, 1)))))
	}
	work := make([][]byte, len(bufs))
	for i := range work {
		work[i] = make([]byte, len(bufs[i]))
	}
	g := NewGROBatch[int](64)
	sink := 0
	b.ReportAllocs()
	b.SetBytes(45 * 1388)
	for b.Loop() {
		for i := range bufs {
			copy(work[i], bufs[i])
			g.Add(1, work[i])
		}
		g.Each(func(dev int, p []byte) { sink += len(p) })
		g.Reset()
	}
	if sink == 0 {
		b.Fatal("nothing written")
	}
}

// A receiving host's GRO may merge the tunnel's segments before the raw
// socket sees them: such a packet goes into the TUN device as a
// super-packet, after whatever of its flow came before.
func TestKernelMergedPackets(t *testing.T) {
	merged, _ := tsoPacket(4000, 5000, TCPFlagACK) // what GRO leaves: partial checksum
	h, ok, bad := MergedByKernel(merged, 1460)
	if !ok || bad || h.GSOType != vnetGSOTCPv6 || h.GSOSize != 1460-72 || h.HdrLen != 72 || h.Flags != VnetNeedsCsum || h.CsumStart != 40 || h.csumOffset != 16 {
		t.Fatalf("merged: %+v ok %v bad %v", h, ok, bad)
	}
	full := pkttest.IP6(0, 0, ProtoTCP, 64, pkttest.TCN, pkttest.THoA, pkttest.TCPSeg(1, 2, 3, 4, TCPFlagACK, pkttest.Pattern(4000, 1)))
	if _, ok, bad := MergedByKernel(full, 1460); ok || bad {
		t.Fatalf("a jumbo packet with a full checksum: ok %v bad %v", ok, bad)
	}
	broken := append([]byte{}, full...)
	broken[100] ^= 1
	if _, ok, bad := MergedByKernel(broken, 1460); ok || !bad {
		t.Fatalf("broken checksum: ok %v bad %v", ok, bad)
	}
	if _, ok, bad := MergedByKernel(merged, 9000); ok || bad {
		t.Fatal("a packet within the MTU is not merged")
	}
	if _, ok, bad := MergedByKernel(pkttest.IP6(0, 0, ProtoUDP, 64, pkttest.TCN, pkttest.THoA, make([]byte, 3000)), 1460); ok || bad {
		t.Fatal("UDP is never merged")
	}

	g := NewGROBatch[int](8)
	before := pkttest.IP6(0, 0, ProtoTCP, 64, pkttest.THoA, pkttest.TCN, pkttest.TCPSeg(40000, 5201, 4000, 77, TCPFlagACK, pkttest.Pattern(1000, 5)))
	g.Add(1, rxBuf(before))
	g.AddMerged(1, rxBuf(merged), h)
	after := pkttest.IP6(0, 0, ProtoTCP, 64, pkttest.THoA, pkttest.TCN, pkttest.TCPSeg(40000, 5201, 9000, 77, TCPFlagACK, pkttest.Pattern(1000, 5)))
	g.Add(1, rxBuf(after))
	out := collect(g)
	if len(out) != 3 || out[1].hdr != h || !bytes.Equal(out[1].pkt, merged) || out[0].hdr.GSOType != 0 || out[2].hdr.GSOType != 0 {
		t.Fatalf("%d packets, middle header %+v", len(out), out[1].hdr)
	}
	// The kernel finishes the checksum of each segment it cuts; for the
	// whole packet the partial one completes to a valid checksum.
	if err := FinishCsum(out[1].pkt, &out[1].hdr); err != nil || !pkttest.UpperChecksumOK(out[1].pkt) {
		t.Fatal("merged packet's checksum does not complete")
	}
}
