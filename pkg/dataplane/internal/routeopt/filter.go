package routeopt

import (
	"golang.org/x/net/bpf"

	"github.com/mcoad/mcoad/pkg/dataplane"
)

// bpfAccept is the filter's return value for a packet it keeps: all of it.
const bpfAccept = 0x40000

// RH2Filter keeps, on a cooked AF_PACKET socket (the packet starts at the
// IPv6 header), IPv6 packets with a type 2 routing header with one segment
// left right behind the IPv6 header and no Mobility Header behind it.
func RH2Filter() []bpf.Instruction {
	return extFilter(protoRouting,
		bpf.LoadAbsolute{Off: dataplane.IPv6HeaderLen + 2, Size: 2}, // type, segments left
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: routingType2<<8 | 1},
	)
}

// HAOFilter keeps IPv6 packets with a Destination Options header right
// behind the IPv6 header and no Mobility Header behind that: candidates for
// a Home Address option, which Go looks for.
func HAOFilter() []bpf.Instruction {
	return extFilter(protoDstOpts)
}

// extFilter keeps IPv6 packets whose first header behind the IPv6 header
// is proto, passes check, is not followed by a Mobility Header and is there
// whole (ExtLen octets: the load past the end of a shorter packet
// rejects it). Every jump's false branch goes to the reject.
func extFilter(proto uint32, check ...bpf.Instruction) []bpf.Instruction {
	f := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x60},
		bpf.LoadAbsolute{Off: 6, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: proto},
	}
	f = append(f, check...)
	f = append(f,
		bpf.LoadAbsolute{Off: dataplane.IPv6HeaderLen, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoMH},
		bpf.LoadAbsolute{Off: dataplane.IPv6HeaderLen + ExtLen - 1, Size: 1},
		bpf.RetConstant{Val: bpfAccept},
		bpf.RetConstant{Val: 0},
	)
	for i, ins := range f {
		if j, ok := ins.(bpf.JumpIf); ok {
			j.SkipFalse = uint8(len(f) - 2 - i)
			f[i] = j
		}
	}
	return f
}
