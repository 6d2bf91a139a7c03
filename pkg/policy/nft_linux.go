package policy

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/config"
)

// nftTable is the whole content of mcoad's nftables table.
type nftTable struct {
	name   string
	chains []nftChain
}

type nftChain struct {
	name  string
	typ   nftables.ChainType
	hook  *nftables.ChainHook
	prio  *nftables.ChainPriority
	rules []nftRule
}

type nftRule struct {
	comment string // the rule's UserData: "mcoad: ..."
	exprs   []expr.Any
}

// Chain names.
const (
	chainOutput = "output"
	chainPost   = "postrouting"
)

// buildTable turns a plan into the table's content.
func buildTable(c *Config, pl *plan) *nftTable {
	out := nftChain{name: chainOutput, typ: nftables.ChainTypeRoute,
		hook: nftables.ChainHookOutput, prio: nftables.ChainPriorityMangle}
	// A mark in our bits is mcoad's bypass, or a socket's own choice
	// (SO_MARK): leave it.
	out.rules = append(out.rules, nftRule{comment: "mcoad: marked",
		exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			bitwise(c.Mask, 0),
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}})
	for _, cp := range pl.policies {
		ex := matchExprs(cp)
		ex = append(ex, &expr.Counter{})
		ex = append(ex, setMark(cp.mark)...)
		ex = append(ex,
			&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
			bitwise(^c.Mask, cp.mark),
			&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
			&expr.Verdict{Kind: expr.VerdictAccept})
		out.rules = append(out.rules, nftRule{comment: fmt.Sprintf("mcoad: policy %s bid %d", cp.p.Name, cp.bid), exprs: ex})
	}
	for _, b := range pl.restore {
		mk := pl.marks[b]
		ex := []expr.Any{
			&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
			bitwise(c.Mask, 0),
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(mk)},
		}
		ex = append(ex, setMark(mk)...)
		ex = append(ex, &expr.Verdict{Kind: expr.VerdictAccept})
		out.rules = append(out.rules, nftRule{comment: fmt.Sprintf("mcoad: restore bid %d", b), exprs: ex})
	}
	post := nftChain{name: chainPost, typ: nftables.ChainTypeFilter,
		hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityMangle}
	// TCP SYNs into a tunnel: MSS from the route's MTU, so a connection
	// that a mark moved onto a tunnel smaller than the one its SYN was
	// sized for still fits.
	post.rules = append(post.rules, nftRule{comment: "mcoad: clamp mss",
		exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(TunnelPrefix)},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x06}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
			&expr.Rt{Register: 1, Key: expr.RtTCPMSS},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 2, Size: 2},
			&expr.Exthdr{SourceRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
		}})
	return &nftTable{name: c.NFTable, chains: []nftChain{out, post}}
}

// matchExprs matches a policy's packets (output direction).
func matchExprs(cp compiled) []expr.Any {
	p := cp.p
	var ex []expr.Any
	if n := p.Protocol.Number(); n != 0 {
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{n}})
	}
	if p.SrcPrefix.IsValid() {
		ex = append(ex, prefixExprs(8, p.SrcPrefix.Addr().AsSlice(), p.SrcPrefix.Bits())...)
	}
	if p.DstPrefix.IsValid() {
		ex = append(ex, prefixExprs(24, p.DstPrefix.Addr().AsSlice(), p.DstPrefix.Bits())...)
	}
	for _, pr := range []struct {
		off uint32
		r   config.PortRange
	}{{0, p.SrcPort}, {2, p.DstPort}} {
		if pr.r.IsZero() {
			continue
		}
		ex = append(ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: pr.off, Len: 2})
		if pr.r.Lo == pr.r.Hi {
			ex = append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(pr.r.Lo)})
			continue
		}
		ex = append(ex,
			&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: binaryutil.BigEndian.PutUint16(pr.r.Lo)},
			&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: binaryutil.BigEndian.PutUint16(pr.r.Hi)})
	}
	if cp.hasUID {
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(cp.uid)})
	}
	if p.Cgroup != "" {
		ex = append(ex,
			&expr.Socket{Key: expr.SocketKeyCgroupv2, Level: cp.cgLvl, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint64(cp.cgID)})
	}
	return ex
}

// prefixExprs matches the address at network header offset off against
// addr/bits, loading only the bytes the prefix covers (as nft does).
func prefixExprs(off uint32, addr []byte, bits int) []expr.Any {
	if bits == 0 {
		return nil
	}
	n := uint32((bits + 7) / 8)
	ex := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}}
	want := addr[:n]
	if bits%8 != 0 {
		mask := make([]byte, n)
		for i := range mask {
			mask[i] = 0xff
		}
		mask[n-1] = byte(0xff << (8 - bits%8))
		ex = append(ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	return append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: want})
}

// setMark is "meta mark set meta mark | mk": the bits under the mask are 0
// here (the first rule accepted every packet with any of them set).
func setMark(mk uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		bitwise(^mk, mk),
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
	}
}

func bitwise(mask, xor uint32) *expr.Bitwise {
	return &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(mask), Xor: u32(xor)}
}

// u32 is a mark in the kernel's (host) byte order.
func u32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

func comment(s string) []byte {
	if len(s) > 254 {
		s = s[:254]
	}
	return userdata.AppendString(nil, userdata.TypeComment, s)
}

func (t *nftTable) nft() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyIPv6, Name: t.name}
}

// queue puts the replacement of the whole table on c's batch: add (so the
// delete never fails), delete, add again with everything in it. One Flush
// applies it atomically.
func (t *nftTable) queue(c *nftables.Conn) {
	tab := t.nft()
	c.AddTable(tab)
	c.DelTable(tab)
	c.AddTable(tab)
	accept := nftables.ChainPolicyAccept
	for _, ch := range t.chains {
		chain := c.AddChain(&nftables.Chain{Name: ch.name, Table: tab, Type: ch.typ,
			Hooknum: ch.hook, Priority: ch.prio, Policy: &accept})
		for _, r := range ch.rules {
			c.AddRule(&nftables.Rule{Table: tab, Chain: chain, Exprs: r.exprs, UserData: comment(r.comment)})
		}
	}
}

// String renders the table the way `nft --debug=netlink list table` shows
// its rules (counters at zero, no handles), for golden tests.
func (t *nftTable) String() string {
	var b strings.Builder
	for _, ch := range t.chains {
		for _, r := range ch.rules {
			fmt.Fprintf(&b, "ip6 %s %s\n", t.name, ch.name)
			for _, e := range r.exprs {
				fmt.Fprintf(&b, "  [ %s ]\n", formatExpr(e))
			}
			fmt.Fprintf(&b, "  userdata = { %s }\n", escapeUserdata(comment(r.comment)))
		}
	}
	return b.String()
}

func escapeUserdata(d []byte) string {
	var b strings.Builder
	for _, c := range d {
		if c >= 0x20 && c < 0x7f && c != '\\' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return b.String()
}

// words prints register data as nft does: 32-bit words in host order.
func words(d []byte) string {
	var parts []string
	for i := 0; i < len(d); i += 4 {
		var w [4]byte
		copy(w[:], d[i:])
		parts = append(parts, fmt.Sprintf("0x%08x", binary.NativeEndian.Uint32(w[:])))
	}
	return strings.Join(parts, " ")
}

var metaKeys = map[expr.MetaKey]string{
	expr.MetaKeyMARK: "mark", expr.MetaKeyOIFNAME: "oifname", expr.MetaKeyL4PROTO: "l4proto",
	expr.MetaKeySKUID: "skuid",
}

var cmpOps = map[expr.CmpOp]string{
	expr.CmpOpEq: "eq", expr.CmpOpNeq: "neq", expr.CmpOpLt: "lt", expr.CmpOpLte: "lte",
	expr.CmpOpGt: "gt", expr.CmpOpGte: "gte",
}

var payloadBases = map[expr.PayloadBase]string{
	expr.PayloadBaseLLHeader: "link", expr.PayloadBaseNetworkHeader: "network", expr.PayloadBaseTransportHeader: "transport",
}

func formatExpr(e expr.Any) string {
	switch e := e.(type) {
	case *expr.Meta:
		if e.SourceRegister {
			return fmt.Sprintf("meta set %s with reg %d", metaKeys[e.Key], e.Register)
		}
		return fmt.Sprintf("meta load %s => reg %d", metaKeys[e.Key], e.Register)
	case *expr.Ct:
		if e.SourceRegister {
			return fmt.Sprintf("ct set mark with reg %d", e.Register)
		}
		return fmt.Sprintf("ct load mark => reg %d", e.Register)
	case *expr.Cmp:
		return fmt.Sprintf("cmp %s reg %d %s", cmpOps[e.Op], e.Register, words(e.Data))
	case *expr.Bitwise:
		return fmt.Sprintf("bitwise reg %d = ( reg %d & %s ) ^ %s", e.DestRegister, e.SourceRegister, words(e.Mask), words(e.Xor))
	case *expr.Payload:
		return fmt.Sprintf("payload load %db @ %s header + %d => reg %d", e.Len, payloadBases[e.Base], e.Offset, e.DestRegister)
	case *expr.Counter:
		return "counter pkts 0 bytes 0"
	case *expr.Verdict:
		if e.Kind == expr.VerdictAccept {
			return "immediate reg 0 accept"
		}
		return fmt.Sprintf("immediate reg 0 verdict %d", e.Kind)
	case *expr.Rt:
		if e.Key == expr.RtTCPMSS {
			return fmt.Sprintf("rt load tcpmss => reg %d", e.Register)
		}
	case *expr.Byteorder:
		op := "hton"
		if e.Op == expr.ByteorderNtoh {
			op = "ntoh"
		}
		return fmt.Sprintf("byteorder reg %d = %s(reg %d, %d, %d)", e.DestRegister, op, e.SourceRegister, e.Size, e.Len)
	case *expr.Exthdr:
		if e.Op == expr.ExthdrOpTcpopt && e.SourceRegister != 0 {
			return fmt.Sprintf("exthdr write tcpopt reg %d => %db @ %d + %d", e.SourceRegister, e.Len, e.Type, e.Offset)
		}
	case *expr.Socket:
		if e.Key == expr.SocketKeyCgroupv2 {
			// nft leaves the level out; the batch golden has it.
			return fmt.Sprintf("socket load cgroupv2 => reg %d", e.Register)
		}
	}
	return fmt.Sprintf("%T %+v", e, e)
}
