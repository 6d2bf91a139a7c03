package mhsock

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
)

// pktBuilder hand-builds IPv6 packets of arbitrary shape (including broken
// ones) for the filter tests, independent of the proto codec.
type pktBuilder struct {
	exts [][]byte // extension headers, each with its Next Header set by build
	nhs  []uint8  // the protocol of each extension header
}

// ext appends an extension header of protocol proto with a body of n*8+6
// octets (generic layout: next header, length, data).
func (p *pktBuilder) ext(proto uint8, n int) *pktBuilder {
	h := make([]byte, 8+8*n)
	h[1] = uint8(n)
	p.exts = append(p.exts, h)
	p.nhs = append(p.nhs, proto)
	return p
}

func (p *pktBuilder) build(upper uint8, body []byte) []byte {
	protos := append(append([]uint8{}, p.nhs...), upper)
	var rest []byte
	for i, h := range p.exts {
		h[0] = protos[i+1]
		rest = append(rest, h...)
	}
	rest = append(rest, body...)
	b := make([]byte, 40, 40+len(rest))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(rest)))
	b[6] = protos[0]
	b[7] = 64
	b[8], b[9] = 0x20, 0x01 // 2001:db8::1 -> 2001:db8::2
	b[10], b[11] = 0x0d, 0xb8
	b[23] = 1
	copy(b[24:], b[8:24])
	b[39] = 2
	return append(b, rest...)
}

func newPkt() *pktBuilder { return &pktBuilder{} }

func TestFilter(t *testing.T) {
	mh := make([]byte, 16) // body of a BRR-sized Mobility Header
	mh[0], mh[1], mh[2] = 59, 1, 0
	ipv4 := newPkt().build(135, mh)
	ipv4[0] = 0x45
	five := newPkt()
	for range 5 {
		five.ext(60, 0)
	}
	cases := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"plain MH", newPkt().build(135, mh), true},
		{"home address option then MH", newPkt().ext(60, 2).build(135, mh), true},
		{"type 2 routing header then MH", newPkt().ext(43, 2).build(135, mh), true},
		{"hop-by-hop then MH", newPkt().ext(0, 0).build(135, mh), true},
		{"hop-by-hop, destination options, MH", newPkt().ext(0, 0).ext(60, 2).build(135, mh), true},
		{"routing, destination options, MH", newPkt().ext(43, 2).ext(60, 2).build(135, mh), true},
		{"long destination options then MH", newPkt().ext(60, 30).build(135, mh), true},
		{"five extension headers: Go decides", five.build(135, mh), true},
		{"TCP", newPkt().build(6, make([]byte, 20)), false},
		{"UDP", newPkt().build(17, make([]byte, 8)), false},
		{"ICMPv6", newPkt().build(58, make([]byte, 8)), false},
		{"destination options then TCP", newPkt().ext(60, 0).build(6, make([]byte, 20)), false},
		{"hop-by-hop then UDP", newPkt().ext(0, 0).build(17, make([]byte, 8)), false},
		{"fragment header", newPkt().ext(44, 0).build(135, mh), false},
		{"no next header", newPkt().build(59, nil), false},
		{"IPv4", ipv4, false},
		{"truncated inside the IPv6 header", newPkt().build(135, mh)[:20], false},
		{"truncated before the extension header", newPkt().ext(60, 2).build(135, mh)[:40], false},
		{"truncated inside the extension header", newPkt().ext(60, 2).build(135, mh)[:41], false},
		{"extension header longer than the packet", newPkt().ext(60, 2).build(135, mh)[:50], false},
		{"Mobility Header shorter than 8 octets", newPkt().build(135, mh[:7]), false},
		{"Mobility Header of 8 octets", newPkt().build(135, mh[:8]), true},
		{"short Mobility Header behind options", newPkt().ext(60, 2).build(135, mh[:4]), false},
		{"empty", nil, false},
	}
	vm, err := bpf.NewVM(mhFilter())
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := vm.Run(c.pkt)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := n > 0; got != c.want {
				t.Errorf("filter returned %d for %x, want accept=%v", n, c.pkt, c.want)
			}
			if n > 0 && n < len(c.pkt) {
				t.Errorf("filter keeps %d of %d octets", n, len(c.pkt))
			}
		})
	}
}

func TestFilterAssembles(t *testing.T) {
	raw, err := bpf.Assemble(mhFilter())
	if err != nil {
		t.Fatalf("Assemble: %v", err)
	}
	// The kernel takes at most BPF_MAXINSNS (4096) classic instructions.
	if len(raw) == 0 || len(raw) > 4096 {
		t.Fatalf("program has %d instructions", len(raw))
	}
	// Every jump must stay inside the program.
	for i, ins := range raw {
		if ins.Op&0x07 == 0x05 && ins.Op != 0x05 { // BPF_JMP, conditional
			if i+1+int(ins.Jt) >= len(raw) || i+1+int(ins.Jf) >= len(raw) {
				t.Errorf("instruction %d jumps out of the program: %+v", i, ins)
			}
		}
	}
}

func TestProgLabels(t *testing.T) {
	var p prog
	p.jeq(1, "nowhere", "")
	if _, err := p.resolve(); err == nil {
		t.Error("unknown label resolved")
	}
}

func BenchmarkFilterVM(b *testing.B) {
	vm, err := bpf.NewVM(mhFilter())
	if err != nil {
		b.Fatal(err)
	}
	pkt := newPkt().ext(60, 2).build(135, make([]byte, 48))
	b.ReportAllocs()
	for b.Loop() {
		if n, _ := vm.Run(pkt); n == 0 {
			b.Fatal("dropped")
		}
	}
}
