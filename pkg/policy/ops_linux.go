package policy

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/config"
)

// netlinkOps is ops on a netlink handle and one lasting nftables
// connection, both in the namespace they were made in.
type netlinkOps struct {
	h   *netlink.Handle
	nft *nftables.Conn
}

func newNetlinkOps() (*netlinkOps, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("policy: netlink: %w", err)
	}
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("policy: nftables: %w", err)
	}
	return &netlinkOps{h: h, nft: c}, nil
}

func (o *netlinkOps) rules() ([]Rule, error) {
	rs, err := o.h.RuleList(netlink.FAMILY_V6)
	if err != nil {
		return nil, err
	}
	var out []Rule
	for _, r := range rs {
		if r.Protocol == config.RuleProtocol {
			out = append(out, fromNetlink(r))
		}
	}
	return out, nil
}

// fromNetlink reads one of our rules back. The listing does not carry the
// action: of our rules only the unreachable one has no table.
func fromNetlink(r netlink.Rule) Rule {
	out := Rule{Priority: r.Priority, Iif: r.IifName, Table: uint32(r.Table), SuppressPrefixlen: r.SuppressPrefixlen}
	if r.Src != nil {
		if a, ok := netip.AddrFromSlice(r.Src.IP); ok {
			bits, _ := r.Src.Mask.Size()
			out.Src = netip.PrefixFrom(a.Unmap(), bits)
		}
	}
	if r.Mask != nil {
		out.Mark, out.Mask = r.Mark, *r.Mask
	} else if r.Mark != 0 {
		out.Mark, out.Mask = r.Mark, 0xffffffff
	}
	if out.Table == 0 {
		out.Unreachable = true
	}
	return out
}

func toNetlink(r Rule) *netlink.Rule {
	n := netlink.NewRule()
	n.Family = netlink.FAMILY_V6
	n.Priority = r.Priority
	n.Protocol = config.RuleProtocol
	if r.Src.IsValid() {
		n.Src = &net.IPNet{IP: r.Src.Addr().AsSlice(), Mask: net.CIDRMask(r.Src.Bits(), 128)}
	}
	if r.Mask != 0 {
		mask := r.Mask
		n.Mark, n.Mask = r.Mark, &mask
	}
	n.IifName = r.Iif
	if r.Unreachable {
		n.Type = unix.RTN_UNREACHABLE
	} else {
		n.Table = int(r.Table)
	}
	n.SuppressPrefixlen = r.SuppressPrefixlen
	return n
}

func (o *netlinkOps) addRule(r Rule) error { return o.h.RuleAdd(toNetlink(r)) }

func (o *netlinkOps) delRule(r Rule) error {
	err := o.h.RuleDel(toNetlink(r))
	if err == unix.ENOENT {
		return nil
	}
	return err
}

func (o *netlinkOps) findTable(name string) (*nftables.Table, error) {
	ts, err := o.nft.ListTablesOfFamily(nftables.TableFamilyIPv6)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.Name == name {
			return t, nil
		}
	}
	return nil, nil
}

func (o *netlinkOps) setTable(name string, t *nftTable) error {
	if t == nil {
		old, err := o.findTable(name)
		if err != nil || old == nil {
			return err
		}
		o.nft.DelTable(old)
		return o.nft.Flush()
	}
	t.queue(o.nft)
	return o.nft.Flush()
}

func (o *netlinkOps) tableRules(name string) (map[string]int, bool, error) {
	t, err := o.findTable(name)
	if err != nil || t == nil {
		return nil, false, err
	}
	chains, err := o.nft.ListChainsOfTableFamily(nftables.TableFamilyIPv6)
	if err != nil {
		return nil, false, err
	}
	out := map[string]int{}
	for _, ch := range chains {
		if ch.Table.Name != name {
			continue
		}
		rs, err := o.nft.GetRules(t, ch)
		if err != nil {
			return nil, false, err
		}
		out[ch.Name] = len(rs)
	}
	return out, true, nil
}

func (o *netlinkOps) close() error {
	o.h.Close()
	return o.nft.CloseLasting()
}
