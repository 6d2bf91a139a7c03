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
	chainOutput  = "output"
	chainPost    = "postrouting"
	chainPre     = "prerouting" // a mobile router's forwarded packets
	chainMobile  = "mobile"     // their policies and mark restores
	chainForward = "forward"
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
		out.rules = append(out.rules, nftRule{comment: fmt.Sprintf("mcoad: policy %s bid %d", cp.p.Name, cp.bid), exprs: policyExprs(c, cp)})
	}
	for _, b := range pl.restore {
		out.rules = append(out.rules, nftRule{comment: fmt.Sprintf("mcoad: restore bid %d", b), exprs: restoreExprs(c, pl.marks[b])})
	}
	post := nftChain{name: chainPost, typ: nftables.ChainTypeFilter,
		hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityMangle}
	// TCP SYNs into a tunnel: MSS from the route's MTU, so a connection
	// that a mark moved onto a tunnel smaller than the one its SYN was
	// sized for still fits.
	post.rules = append(post.rules, nftRule{comment: "mcoad: clamp mss",
		exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(config.TunnelDevicePrefix)},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x06}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
			&expr.Rt{Register: 1, Key: expr.RtTCPMSS},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 2, Size: 2},
			&expr.Exthdr{SourceRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
		}})
	chains := []nftChain{out, post}
	if pl.networks != nil {
		chains = append(chains, networkChains(c, pl)...)
	}
	return &nftTable{name: c.NFTable, chains: chains}
}

// networkChains are a mobile router's (NEMO): packets from a mobile network
// arriving on an ingress interface get the marks of the policies (or of
// their connection) in prerouting, before the routing decision, as local
// packets do in output; and forwarding is allowed between the ingress
// interfaces and the tunnels only, never to or from an uplink.
//
//	chain prerouting (type filter, hook prerouting, priority mangle)
//	  iifname <ingress> ip6 saddr <prefix> jump mobile
//	chain mobile
//	  <policy match> meta mark |= mark(b) ct mark = ct mark &^ Mask | mark(b) accept
//	  ct mark & Mask == mark(b) meta mark |= mark(b) accept
//	chain forward (type filter, hook forward, priority filter)
//	  iifname <ingress> oifname "mcoab*" accept, and to the other ingress interfaces
//	  iifname <ingress> drop
//	  iifname "mcoab*" oifname <ingress> accept, and from the other ingress interfaces
//	  oifname <ingress> drop
//	  iifname <uplink> drop; oifname <uplink> drop
func networkChains(c *Config, pl *plan) []nftChain {
	n := pl.networks
	pre := nftChain{name: chainPre, typ: nftables.ChainTypeFilter,
		hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityMangle}
	for _, i := range n.Ingress {
		for _, p := range n.Prefixes {
			ex := ifname(expr.MetaKeyIIFNAME, i)
			ex = append(ex, prefixExprs(8, p.Addr().AsSlice(), p.Bits())...)
			ex = append(ex, &expr.Verdict{Kind: expr.VerdictJump, Chain: chainMobile})
			pre.rules = append(pre.rules, nftRule{comment: fmt.Sprintf("mcoad: from %s on %s", p, i), exprs: ex})
		}
	}
	mob := nftChain{name: chainMobile}
	for _, cp := range pl.policies {
		if cp.hasUID || cp.p.Cgroup != "" {
			continue // forwarded packets have no socket
		}
		mob.rules = append(mob.rules, nftRule{comment: fmt.Sprintf("mcoad: policy %s bid %d", cp.p.Name, cp.bid), exprs: policyExprs(c, cp)})
	}
	for _, b := range pl.restore {
		mob.rules = append(mob.rules, nftRule{comment: fmt.Sprintf("mcoad: restore bid %d", b), exprs: restoreExprs(c, pl.marks[b])})
	}
	fwd := nftChain{name: chainForward, typ: nftables.ChainTypeFilter,
		hook: nftables.ChainHookForward, prio: nftables.ChainPriorityFilter}
	verdict := func(k expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: k} }
	add := func(comment string, ex ...expr.Any) {
		fwd.rules = append(fwd.rules, nftRule{comment: "mcoad: " + comment, exprs: ex})
	}
	tunnels := []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(config.TunnelDevicePrefix)}}
	for _, dir := range []struct {
		from, to expr.MetaKey
		name     string
	}{{expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME, "from"}, {expr.MetaKeyOIFNAME, expr.MetaKeyIIFNAME, "to"}} {
		for _, i := range n.Ingress {
			ex := ifname(dir.from, i)
			ex = append(ex, &expr.Meta{Key: dir.to, Register: 1}, tunnels[1], verdict(expr.VerdictAccept))
			add(fmt.Sprintf("%s %s via tunnels", dir.name, i), ex...)
			for _, j := range n.Ingress {
				if j != i {
					ex := append(ifname(dir.from, i), ifname(dir.to, j)...)
					add(fmt.Sprintf("%s %s via %s", dir.name, i, j), append(ex, verdict(expr.VerdictAccept))...)
				}
			}
			add(fmt.Sprintf("%s %s untunnelled", dir.name, i), append(ifname(dir.from, i), &expr.Counter{}, verdict(expr.VerdictDrop))...)
		}
	}
	for _, u := range n.Uplinks {
		add("from uplink "+u, append(ifname(expr.MetaKeyIIFNAME, u), &expr.Counter{}, verdict(expr.VerdictDrop))...)
		add("to uplink "+u, append(ifname(expr.MetaKeyOIFNAME, u), &expr.Counter{}, verdict(expr.VerdictDrop))...)
	}
	// mobile first: a jump needs its chain in place.
	return []nftChain{mob, pre, fwd}
}

// ifname matches an interface name exactly (NUL-padded to IFNAMSIZ, as
// nft compares it).
func ifname(key expr.MetaKey, name string) []expr.Any {
	d := make([]byte, 16)
	copy(d, name)
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: d}}
}

// policyExprs sends a policy's packets to its BID and remembers the BID
// in the connection's mark.
func policyExprs(c *Config, cp compiled) []expr.Any {
	ex := matchExprs(cp)
	ex = append(ex, &expr.Counter{})
	ex = append(ex, setMark(cp.mark)...)
	return append(ex,
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		bitwise(^c.Mask, cp.mark),
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
		&expr.Verdict{Kind: expr.VerdictAccept})
}

// restoreExprs gives a packet its connection's BID while that BID lives.
func restoreExprs(c *Config, mk uint32) []expr.Any {
	ex := []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		bitwise(c.Mask, 0),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(mk)},
	}
	ex = append(ex, setMark(mk)...)
	return append(ex, &expr.Verdict{Kind: expr.VerdictAccept})
}

// matchExprs matches a policy's packets (output direction).
func matchExprs(cp compiled) []expr.Any {
	p := cp.p
	var ex []expr.Any
	if n := p.Protocol; n != 0 {
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
		r   Ports
	}{{0, p.SrcPort}, {2, p.DstPort}} {
		if pr.r == (Ports{}) {
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
		nc := &nftables.Chain{Name: ch.name, Table: tab}
		if ch.hook != nil { // a base chain; the others are jumped to
			nc.Type, nc.Hooknum, nc.Priority, nc.Policy = ch.typ, ch.hook, ch.prio, &accept
		}
		chain := c.AddChain(nc)
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
	expr.MetaKeySKUID: "skuid", expr.MetaKeyIIFNAME: "iifname",
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
		switch e.Kind {
		case expr.VerdictAccept:
			return "immediate reg 0 accept"
		case expr.VerdictDrop:
			return "immediate reg 0 drop"
		case expr.VerdictJump:
			return "immediate reg 0 jump -> " + e.Chain
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
