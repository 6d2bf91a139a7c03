package bpftun

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/mcoad/mcoad/internal/nstest"
)

var (
	ha      = netip.MustParseAddr("2001:db8:1::1")
	coa     = netip.MustParseAddr("2001:db8:2::100")
	hoa     = netip.MustParseAddr("2001:db8:aaaa::100")
	cn      = netip.MustParseAddr("2001:db8:3::1")
	spoofer = netip.MustParseAddr("2001:db8:66::66")
)

const (
	tcActOK   = 0
	tcActShot = 2
	tcPass    = 0xffffffff // TC_ACT_UNSPEC: not ours, the next program or the stack decides
	nhUDP     = 17
	nhIPv4    = 4
)

// ip6 is an IPv6 header followed by payload.
func ip6(src, dst netip.Addr, nexthdr byte, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6], h[7] = nexthdr, 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// ext is an extension header of 8*(units+1) bytes announcing next.
func ext(next byte, units int, rest []byte) []byte {
	h := make([]byte, 8*(units+1))
	h[0], h[1] = next, byte(units)
	h[2], h[3] = 1, byte(len(h)-4) // a PadN option filling the header
	return append(h, rest...)
}

// withECN returns a copy of the IPv6 packet p with ECN field ecn.
func withECN(p []byte, ecn byte) []byte {
	q := append([]byte(nil), p...)
	q[1] = q[1]&^0x30 | ecn<<4
	return q
}

func ether(proto uint16, l3 []byte) []byte {
	f := make([]byte, 14, 14+len(l3))
	copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:], proto)
	return append(f, l3...)
}

func loaded(t *testing.T) *Programs {
	t.Helper()
	nstest.Require(t)
	p, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestDecap runs the ingress program on crafted frames (BPF_PROG_TEST_RUN):
// only IPv6-in-IPv6 to a local endpoint from an allowed peer loses its
// outer header; spoofed and malformed tunnel packets are dropped and
// counted; everything else passes untouched.
func TestDecap(t *testing.T) {
	p := loaded(t)
	const id = 7
	for _, err := range []error{p.SetEndpoint(coa, id), p.AllowPeer(ha), p.AllowPeer(cn)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	inner := ip6(cn, hoa, nhUDP, []byte("12345678hello"))
	dstopts := ext(41, 0, inner)
	// hop-by-hop -> routing -> destination options -> IPv6
	chain := ext(43, 1, ext(60, 0, ext(41, 0, inner)))
	tooDeep := ext(60, 0, ext(60, 0, ext(60, 0, ext(60, 0, ext(41, 0, inner)))))

	tests := []progCase{
		{name: "from home agent", frame: ether(0x86dd, ip6(ha, coa, 41, inner)), want: ether(0x86dd, inner)},
		{name: "from correspondent", frame: ether(0x86dd, ip6(cn, coa, 41, inner)), want: ether(0x86dd, inner)},
		{name: "destination options first", frame: ether(0x86dd, ip6(ha, coa, 60, dstopts)), want: ether(0x86dd, inner)},
		{name: "three extension headers", frame: ether(0x86dd, ip6(ha, coa, 0, chain)), want: ether(0x86dd, inner)},
		{name: "spoofed outer source", frame: ether(0x86dd, ip6(spoofer, coa, 41, inner)), ret: tcActShot, drop: DropSpoofed},
		{name: "not a local endpoint", frame: ether(0x86dd, ip6(ha, hoa, 41, inner)), ret: tcPass},
		{name: "not a tunnel packet", frame: ether(0x86dd, ip6(ha, coa, nhUDP, []byte("12345678"))), ret: tcPass},
		{name: "IPv4", frame: ether(0x0800, make([]byte, 60)), ret: tcPass},
		{name: "truncated inner header", frame: ether(0x86dd, ip6(ha, coa, 41, inner[:20])), ret: tcActShot, drop: DropMalformed},
		{name: "no inner packet", frame: ether(0x86dd, ip6(ha, coa, 41, nil)), ret: tcActShot, drop: DropMalformed},
		{name: "IPv4 inside", frame: ether(0x86dd, ip6(ha, coa, 41, append([]byte{0x45}, inner[1:]...))), ret: tcActShot, drop: DropMalformed},
		// RFC 6040 section 4.2: CE on the outer header reaches an
		// ECN-capable inner packet; a packet that is not ECN-capable
		// cannot carry it and is dropped; ECT(1) outside marks ECT(0).
		{name: "congestion experienced", frame: ether(0x86dd, withECN(ip6(ha, coa, 41, withECN(inner, 2)), 3)), want: ether(0x86dd, withECN(inner, 3))},
		{name: "congestion on not-ECT", frame: ether(0x86dd, withECN(ip6(ha, coa, 41, inner), 3)), ret: tcActShot, drop: DropECN},
		{name: "ECT(1) outside", frame: ether(0x86dd, withECN(ip6(ha, coa, 41, withECN(inner, 2)), 1)), want: ether(0x86dd, withECN(inner, 1))},
		{name: "ECT(0) outside, not-ECT inside", frame: ether(0x86dd, withECN(ip6(ha, coa, 41, inner), 2)), want: ether(0x86dd, inner)},
		{name: "extension header past the end", frame: ether(0x86dd, ip6(ha, coa, 60, []byte{41, 200, 0, 0})), ret: tcActShot, drop: DropMalformed},
		{name: "extension header cut short", frame: ether(0x86dd, ip6(ha, coa, 60, []byte{41})), ret: tcPass},
		{name: "too many extension headers", frame: ether(0x86dd, ip6(ha, coa, 60, tooDeep)), ret: tcPass},
	}
	runCases(t, p.Decap(), p, tests)
	stats, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if got := stats[id]; got.RxPackets != 7 || got.RxBytes != 7*uint64(len(inner)) || got.TxPackets != 0 {
		t.Errorf("tunnel %d counted %+v, want 7 inner packets of %d bytes received", id, got, len(inner))
	}

	// An endpoint removed (its care-of address went) is no longer ours.
	if err := p.DeleteEndpoint(coa); err != nil {
		t.Fatal(err)
	}
	frame := ether(0x86dd, ip6(ha, coa, 41, inner))
	if ret, out := run(t, p.Decap(), frame); ret != tcPass || !bytes.Equal(out, frame) {
		t.Errorf("after DeleteEndpoint: returned %d with % x, want the frame untouched", ret, out)
	}
}

// progCase is a crafted frame and what a tc program must make of it.
type progCase struct {
	name  string
	frame []byte
	ret   uint32
	want  []byte // the frame after the program (nil: unchanged)
	drop  Drop   // counted when ret is shot
}

// runCases runs prog on each case and checks its verdict, the frame it
// leaves and the drop counters of d: only the case's reason, once.
func runCases(t *testing.T, prog *ebpf.Program, d interface {
	Drops() (map[Drop]uint64, error)
}, cases []progCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			before, err := d.Drops()
			if err != nil {
				t.Fatal(err)
			}
			ret, out := run(t, prog, tt.frame)
			want := tt.want
			if want == nil {
				want = tt.frame
			}
			if ret != tt.ret || !bytes.Equal(out, want) {
				t.Fatalf("returned %d with\n % x\nwant %d with\n % x", ret, out, tt.ret, want)
			}
			after, err := d.Drops()
			if err != nil {
				t.Fatal(err)
			}
			for r := range numDrops {
				n, wantN := after[r]-before[r], uint64(0)
				if ret == tcActShot && r == tt.drop {
					wantN = 1
				}
				if n != wantN {
					t.Errorf("%s drops counted %d, want %d", r, n, wantN)
				}
			}
		})
	}
}

func run(t *testing.T, prog *ebpf.Program, frame []byte) (uint32, []byte) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
	ret, err := prog.Run(opts)
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret, opts.DataOut
}
