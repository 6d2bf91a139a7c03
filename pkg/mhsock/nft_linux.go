package mhsock

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/proto"
)

// ruleCommentPrefix starts the comment (nftables user data) of every rule
// mhsock installs, so that people and tools can tell them apart.
const ruleCommentPrefix = "mcoad/mhsock: drop parameter problem for "

// Embedded-packet offsets: an ICMPv6 error carries its 8-octet header and
// then the invoking packet.
const icmpHdrLen = 8

// A paramProbRule drops ICMPv6 Parameter Problem messages with the given
// code whose pointer is ptr, whose embedded packet's first next header is
// nh and whose embedded octet at ptr (the one the kernel complains about)
// is val. These are fixed offsets, so nftables matches them cheaply, and
// together they describe only replies to Mobile IPv6 signaling.
type paramProbRule struct {
	name    string
	code    uint8
	ptr     uint32
	nh, val uint8
}

var paramProbRules = []paramProbRule{
	// Home Address option: the first option after a PadN in a
	// Destination Options header right behind the IPv6 header, at the
	// 8n+6 alignment RFC 6275 6.3 requires (n = 0).
	{name: "home address option", code: 2, ptr: proto.IPv6HeaderLen + 6,
		nh: proto.ProtoDstOpts, val: proto.OptHomeAddress},
	// Type 2 routing header right behind the IPv6 header; the kernel points
	// at its Routing Type octet.
	{name: "type 2 routing header", code: 0, ptr: proto.IPv6HeaderLen + 2,
		nh: proto.ProtoRouting, val: proto.RoutingType2},
	// Plain Mobility Header, in case no raw socket of protocol 135 is
	// open (Conn opens one): the kernel points at the Next Header field.
	{name: "mobility header", code: 1, ptr: 6, nh: proto.ProtoMH, val: proto.ProtoMH},
}

func (r paramProbRule) exprs() []expr.Any {
	const icmpParamProb = 4
	ptr := binary.BigEndian.AppendUint32(nil, r.ptr)
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		// type and code
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{icmpParamProb, r.code}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 4, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ptr},
		// embedded IPv6 header's Next Header
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: icmpHdrLen + 6, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.nh}},
	}
	if r.ptr != 6 {
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: icmpHdrLen + r.ptr, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.val}},
		)
	}
	return append(e, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
}

// nftTable is the nftables table Conn owns, on one lasting netlink
// connection made in Listen's network namespace.
type nftTable struct {
	conn  *nftables.Conn
	table *nftables.Table
	chain *nftables.Chain
}

// installNFT replaces any table called name (a crashed run's) with a fresh
// one holding the Parameter Problem rules, in one atomic batch.
func installNFT(name string) (*nftTable, error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("mhsock: nftables: %w", err)
	}
	n := &nftTable{conn: c, table: &nftables.Table{Family: nftables.TableFamilyIPv6, Name: name}}
	// Add (a no-op if it exists), delete, add: the usual way to start from
	// an empty table whether or not one was left behind.
	c.AddTable(n.table)
	c.DelTable(n.table)
	c.AddTable(n.table)
	accept := nftables.ChainPolicyAccept
	n.chain = c.AddChain(&nftables.Chain{
		Name:     "output",
		Table:    n.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookOutput,
		Priority: nftables.ChainPriorityFilter,
		Policy:   &accept,
	})
	for _, r := range paramProbRules {
		c.AddRule(&nftables.Rule{
			Table:    n.table,
			Chain:    n.chain,
			Exprs:    r.exprs(),
			UserData: userdata.AppendString(nil, userdata.TypeComment, ruleCommentPrefix+r.name),
		})
	}
	if err := c.Flush(); err != nil {
		c.CloseLasting()
		return nil, fmt.Errorf("mhsock: nftables table %s: %w", name, err)
	}
	return n, nil
}

// suppressed sums the packet counters of our rules.
func (n *nftTable) suppressed() (uint64, error) {
	counts, err := n.counts()
	var sum uint64
	for _, v := range counts {
		sum += v
	}
	return sum, err
}

// counts returns the packet counter of each of our rules by rule name.
func (n *nftTable) counts() (map[string]uint64, error) {
	rules, err := n.conn.GetRules(n.table, n.chain)
	if err != nil {
		return nil, fmt.Errorf("mhsock: nftables rules: %w", err)
	}
	m := make(map[string]uint64, len(rules))
	for _, r := range rules {
		c, ok := userdata.GetString(r.UserData, userdata.TypeComment)
		if !ok || !strings.HasPrefix(c, ruleCommentPrefix) {
			continue
		}
		for _, e := range r.Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				m[strings.TrimPrefix(c, ruleCommentPrefix)] += ctr.Packets
			}
		}
	}
	return m, nil
}

// remove deletes the table and closes the connection.
func (n *nftTable) remove() error {
	n.conn.DelTable(n.table)
	err := n.conn.Flush()
	n.conn.CloseLasting()
	if err != nil {
		return fmt.Errorf("mhsock: remove nftables table %s: %w", n.table.Name, err)
	}
	return nil
}

// DeleteTable removes the nftables table (family ip6) that a Conn with
// Config.NFTable name left behind when its process was killed; no table
// is no error. Daemons' -cleanup uses it.
func DeleteTable(name string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv6)
	if err != nil {
		return fmt.Errorf("nftables: list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == name {
			c.DelTable(t)
			if err := c.Flush(); err != nil {
				return fmt.Errorf("nftables: delete table ip6 %s: %w", name, err)
			}
		}
	}
	return nil
}
