package mhsock

import (
	"fmt"

	"golang.org/x/net/bpf"

	"github.com/mcoad/mcoad/pkg/proto"
)

// filterExtHeaders is how many extension headers the BPF filter walks
// looking for a Mobility Header. MIPv6 packets carry at most a Hop-by-Hop,
// a Routing and a Destination Options header; a longer chain of those is
// passed to Go, which decides.
const filterExtHeaders = 4

// filterSnap is the BPF return value for an accepted packet: keep it all
// (the kernel caps it at the packet's length).
const filterSnap = 0x40000

// mhFilter returns the classic BPF program for a cooked (SOCK_DGRAM)
// AF_PACKET socket of protocol ETH_P_IPV6, where the packet starts at the
// IPv6 header. It keeps IPv6 packets whose next header is a Mobility
// Header, directly or behind up to filterExtHeaders Hop-by-Hop, Routing or
// Destination Options headers, and drops everything else, including
// packets truncated inside that chain or before the Mobility Header's first
// 8 octets (an out-of-range load ends a classic BPF program with 0). The cheap checks happen here, in the kernel, so that
// ordinary traffic never wakes the reader.
func mhFilter() []bpf.Instruction {
	var p prog
	p.add(bpf.LoadAbsolute{Off: 0, Size: 1})
	p.add(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	p.jeq(0x60, "", "drop") // IP version 6
	p.add(bpf.LoadAbsolute{Off: 6, Size: 1})
	p.add(bpf.LoadConstant{Dst: bpf.RegX, Val: proto.IPv6HeaderLen})
	// Invariant at each step: A is a next-header value, X the offset of
	// the header it announces.
	for i := range filterExtHeaders {
		ext := fmt.Sprintf("ext%d", i)
		p.jeq(proto.ProtoMH, "accept", "")
		p.jeq(proto.ProtoHopByHop, ext, "")
		p.jeq(proto.ProtoRouting, ext, "")
		p.jeq(proto.ProtoDstOpts, ext, "drop")
		p.label(ext)
		// These three share the generic layout: next header, then the
		// length in 8-octet units not counting the first 8.
		p.add(bpf.LoadIndirect{Off: 1, Size: 1})
		p.add(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1})
		p.add(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 3})
		p.add(bpf.ALUOpX{Op: bpf.ALUOpAdd})
		p.add(bpf.StoreScratch{Src: bpf.RegA, N: 0})
		p.add(bpf.LoadIndirect{Off: 0, Size: 1})
		p.add(bpf.LoadScratch{Dst: bpf.RegX, N: 0})
	}
	p.jeq(proto.ProtoMH, "accept", "")
	p.jeq(proto.ProtoHopByHop, "accept", "")
	p.jeq(proto.ProtoRouting, "accept", "")
	p.jeq(proto.ProtoDstOpts, "accept", "drop")
	p.label("drop")
	p.add(bpf.RetConstant{Val: 0})
	p.label("accept")
	// X is the offset of the Mobility Header (or of the header Go has to
	// look at): its first 8 octets, the minimum, must be there. An
	// out-of-range load drops the packet.
	p.add(bpf.LoadIndirect{Off: 7, Size: 1})
	p.add(bpf.RetConstant{Val: filterSnap})
	ins, err := p.resolve()
	if err != nil {
		panic(err) // a bug in the program above, caught by the tests
	}
	return ins
}

// prog is a tiny assembler with labels for forward jumps.
type prog struct {
	ins    []bpf.Instruction
	jumps  []progJump
	labels map[string]int
}

type progJump struct {
	at          int
	true, false string // "" means the next instruction
}

func (p *prog) add(i bpf.Instruction) { p.ins = append(p.ins, i) }

func (p *prog) jeq(val uint32, ifTrue, ifFalse string) {
	p.jumps = append(p.jumps, progJump{at: len(p.ins), true: ifTrue, false: ifFalse})
	p.ins = append(p.ins, bpf.JumpIf{Cond: bpf.JumpEqual, Val: val})
}

func (p *prog) label(name string) {
	if p.labels == nil {
		p.labels = map[string]int{}
	}
	p.labels[name] = len(p.ins)
}

func (p *prog) resolve() ([]bpf.Instruction, error) {
	skip := func(from int, label string) (uint8, error) {
		if label == "" {
			return 0, nil
		}
		to, ok := p.labels[label]
		if !ok {
			return 0, fmt.Errorf("bpf: unknown label %q", label)
		}
		d := to - from - 1
		if d < 0 || d > 255 {
			return 0, fmt.Errorf("bpf: jump to %q out of range (%d)", label, d)
		}
		return uint8(d), nil
	}
	for _, j := range p.jumps {
		ji := p.ins[j.at].(bpf.JumpIf)
		var err error
		if ji.SkipTrue, err = skip(j.at, j.true); err != nil {
			return nil, err
		}
		if ji.SkipFalse, err = skip(j.at, j.false); err != nil {
			return nil, err
		}
		p.ins[j.at] = ji
	}
	return p.ins, nil
}
