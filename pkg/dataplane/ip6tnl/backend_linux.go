package ip6tnl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/link"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
)

// kernelOps is the part of netlink the kernel backend uses, small enough
// for a recording fake: the kernel of the test machines has no ip6_tunnel.
type kernelOps interface {
	// Link returns an interface's index and MTU (index 0: no such link).
	Link(name string, index int) (kLink, error)
	// Links lists the ip6tnl links whose names start with prefix.
	Links(prefix string) ([]string, error)
	AddIp6tnl(name string, local, remote netip.Addr, parent kLink, mtu int) error
	AddDummy(name string) error
	SetUp(name string) error
	SetMTU(name string, mtu int) error
	Del(name string) error
	AddrReplace(dev string, p netip.Prefix) error
	AddrDel(dev string, p netip.Prefix) error
	RouteReplace(table uint32, dev string, src netip.Addr) error
	Stats(name string) (dataplane.Counters, error)
	Close()
}

type kLink struct {
	Name  string
	Index int
	MTU   int
}

// ip6tnl flags (include/uapi/linux/ip6_tunnel.h).
const (
	ip6tnlIgnEncapLimit = 0x1 // no Tunnel Encapsulation Limit option: the same packets as the userspace backend
	ip6tnlOrigTclass    = 0x2
	ip6tnlOrigFlowlabel = 0x4
)

// kernelBackend keeps one ip6tnl link per BID (local CoA, remote HA,
// bound to the BID's interface) and the home address on a dummy link;
// the kernel does the encapsulation both ways.
type kernelBackend struct {
	cfg dataplane.Config
	log *slog.Logger
	ops kernelOps

	mu      sync.Mutex
	closed  bool
	swept   bool
	hoa     netip.Addr
	home    bool
	tunnels map[uint16]dataplane.Tunnel
}

func newKernelBackend(cfg dataplane.Config, ops kernelOps) *kernelBackend {
	return &kernelBackend{cfg: cfg, log: cfg.Logger.With("dataplane", "kernel"), ops: ops, tunnels: map[uint16]dataplane.Tunnel{}}
}

func (b *kernelBackend) Name() string { return Name }

func (b *kernelBackend) SetTunnels(ctx context.Context, tunnels []dataplane.Tunnel) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := dataplane.CheckOpen(ctx, b.closed); err != nil {
		return err
	}
	return b.reconcile(tunnels)
}

func (b *kernelBackend) reconcile(in []dataplane.Tunnel) error {
	want, lookupErr, err := dataplane.NormalizeTunnels(in, func(name string, index int) (string, int, int, error) {
		l, err := b.ops.Link(name, index)
		return l.Name, l.Index, l.MTU, err
	})
	if err != nil {
		return err
	}
	wanted := map[uint16]dataplane.Tunnel{}
	for _, t := range want {
		wanted[t.BID] = t
	}
	errs := []error{lookupErr}
	if !b.swept {
		// Links of an earlier run that died without cleaning up.
		names, err := b.ops.Links(config.TunnelDevicePrefix)
		if err != nil {
			return err
		}
		for _, n := range names {
			if !b.knownName(n) {
				errs = append(errs, b.ops.Del(n))
			}
		}
		b.swept = true
	}
	for bid, t := range b.tunnels {
		if w, ok := wanted[bid]; !ok || !sameKernelTunnel(t, w) {
			if err := b.ops.Del(dataplane.DeviceName(bid)); err != nil {
				errs = append(errs, err)
			}
			delete(b.tunnels, bid)
		}
	}
	if len(want) == 0 {
		if b.home {
			errs = append(errs, b.ops.Del(b.cfg.HomeDevice))
			b.home, b.hoa = false, netip.Addr{}
		}
		return errors.Join(errs...)
	}
	if err := b.ensureHome(want[0].HoA); err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, t := range want {
		if err := b.ensureTunnel(t); err != nil {
			errs = append(errs, fmt.Errorf("tunnel bid %d: %w", t.BID, err))
		}
	}
	return errors.Join(errs...)
}

// knownName: a BID link this backend made itself.
func (b *kernelBackend) knownName(n string) bool {
	for bid := range b.tunnels {
		if dataplane.DeviceName(bid) == n {
			return true
		}
	}
	return false
}

// sameKernelTunnel: an ip6tnl link can stay when only its MTU or the
// home address (which only its table's route names) changed.
func sameKernelTunnel(a, b dataplane.Tunnel) bool {
	a.MTU, b.MTU = 0, 0
	a.HoA, b.HoA = netip.Addr{}, netip.Addr{}
	return a == b
}

func (b *kernelBackend) ensureHome(hoa netip.Addr) error {
	if !b.home {
		if err := b.ops.AddDummy(b.cfg.HomeDevice); err != nil {
			return fmt.Errorf("home device: %w", err)
		}
		if err := b.ops.SetUp(b.cfg.HomeDevice); err != nil {
			return fmt.Errorf("home device: %w", err)
		}
		b.home = true
	}
	if b.hoa == hoa {
		return nil
	}
	if b.hoa.IsValid() {
		b.ops.AddrDel(b.cfg.HomeDevice, netip.PrefixFrom(b.hoa, 128))
	}
	if err := b.ops.AddrReplace(b.cfg.HomeDevice, netip.PrefixFrom(hoa, 128)); err != nil {
		return fmt.Errorf("home address: %w", err)
	}
	b.hoa = hoa // the tables' preferred sources follow in ensureTunnel
	return nil
}

func (b *kernelBackend) ensureTunnel(t dataplane.Tunnel) error {
	name := dataplane.DeviceName(t.BID)
	old, ok := b.tunnels[t.BID]
	switch {
	case !ok:
		parent := kLink{Name: t.Iface, Index: t.Ifindex}
		if err := b.ops.AddIp6tnl(name, t.CoA, t.HA, parent, t.MTU); err != nil {
			return err
		}
		if err := b.ops.SetUp(name); err != nil {
			b.ops.Del(name)
			return err
		}
		b.tunnels[t.BID] = t
		b.log.Info("tunnel up", "bid", t.BID, "dev", name, "coa", t.CoA, "iface", t.Iface, "ha", t.HA, "mtu", t.MTU)
	case old.MTU != t.MTU:
		if err := b.ops.SetMTU(name, t.MTU); err != nil {
			return err
		}
	}
	b.tunnels[t.BID] = t
	return b.ops.RouteReplace(b.cfg.Table(t.BID), name, t.HoA)
}

func (b *kernelBackend) Stats() dataplane.Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := dataplane.Stats{Tunnels: map[uint16]dataplane.Counters{}}
	for bid := range b.tunnels {
		if c, err := b.ops.Stats(dataplane.DeviceName(bid)); err == nil {
			st.Tunnels[bid] = c
		}
	}
	return st
}

func (b *kernelBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	err := b.reconcile(nil)
	b.ops.Close()
	return err
}

// netlinkOps is kernelOps on a real netlink handle.
type netlinkOps struct{ h *netlink.Handle }

func (o netlinkOps) Link(name string, index int) (kLink, error) {
	n, i, mtu, err := link.LookupLink(o.h, name, index)
	return kLink{Name: n, Index: i, MTU: mtu}, err
}

func (o netlinkOps) Links(prefix string) ([]string, error) {
	ls, err := o.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("link list: %w", err)
	}
	var out []string
	for _, l := range ls {
		if l.Type() == "ip6tnl" && strings.HasPrefix(l.Attrs().Name, prefix) {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}

func (o netlinkOps) AddIp6tnl(name string, local, remote netip.Addr, parent kLink, mtu int) error {
	l := &netlink.Ip6tnl{
		LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu},
		Link:      uint32(parent.Index),
		Local:     local.AsSlice(),
		Remote:    remote.AsSlice(),
		Proto:     unix.IPPROTO_IPV6,
		Ttl:       packet.OuterHopLimit,
		Flags:     ip6tnlIgnEncapLimit | ip6tnlOrigTclass | ip6tnlOrigFlowlabel,
	}
	if err := o.h.LinkAdd(l); err != nil {
		return fmt.Errorf("link add ip6tnl %s: %w", name, err)
	}
	// No IPv6 address generation: no link-local address, no RS or MLD
	// of its own into the tunnel.
	o.h.LinkSetIP6AddrGenMode(l, 1)
	return nil
}

func (o netlinkOps) AddDummy(name string) error {
	l := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := o.h.LinkAdd(l); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("link add dummy %s: %w", name, err)
	}
	return nil
}

func (o netlinkOps) byName(name string) (netlink.Link, error) {
	l, err := o.h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

func (o netlinkOps) SetUp(name string) error {
	l, err := o.byName(name)
	if err != nil {
		return err
	}
	return o.h.LinkSetUp(l)
}

func (o netlinkOps) SetMTU(name string, mtu int) error {
	l, err := o.byName(name)
	if err != nil {
		return err
	}
	return o.h.LinkSetMTU(l, mtu)
}

func (o netlinkOps) Del(name string) error {
	l, err := o.h.LinkByName(name)
	if err != nil {
		return nil // already gone
	}
	if err := o.h.LinkDel(l); err != nil {
		return fmt.Errorf("link del %s: %w", name, err)
	}
	return nil
}

func (o netlinkOps) AddrReplace(dev string, p netip.Prefix) error {
	l, err := o.byName(dev)
	if err != nil {
		return err
	}
	return o.h.AddrReplace(l, link.HomeAddr(p.Addr()))
}

func (o netlinkOps) AddrDel(dev string, p netip.Prefix) error {
	l, err := o.byName(dev)
	if err != nil {
		return err
	}
	return o.h.AddrDel(l, link.HomeAddr(p.Addr()))
}

func (o netlinkOps) RouteReplace(table uint32, dev string, src netip.Addr) error {
	l, err := o.byName(dev)
	if err != nil {
		return err
	}
	r := &netlink.Route{
		Family:    netlink.FAMILY_V6,
		Dst:       &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		LinkIndex: l.Attrs().Index,
		Table:     int(table),
		Src:       src.AsSlice(),
	}
	if err := o.h.RouteReplace(r); err != nil {
		return fmt.Errorf("route default dev %s table %d: %w", dev, table, err)
	}
	return nil
}

func (o netlinkOps) Stats(name string) (dataplane.Counters, error) {
	l, err := o.byName(name)
	if err != nil {
		return dataplane.Counters{}, err
	}
	s := l.Attrs().Statistics
	if s == nil {
		return dataplane.Counters{}, nil
	}
	return dataplane.Counters{TxPackets: s.TxPackets, TxBytes: s.TxBytes, RxPackets: s.RxPackets, RxBytes: s.RxBytes, TxErrors: s.TxErrors + s.TxDropped}, nil
}

func (o netlinkOps) Close() { o.h.Close() }
