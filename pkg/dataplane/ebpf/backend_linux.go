package ebpf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/bpftun"
	"github.com/mcoad/mcoad/pkg/dataplane"
	dplink "github.com/mcoad/mcoad/pkg/dataplane/internal/link"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/tunio"
)

// backend owns the programs, their maps, the tc links on the uplinks, the
// BIDs' default routes and the home device.
type backend struct {
	cfg   dataplane.Config
	log   *slog.Logger
	progs *bpftun.Programs
	h     *netlink.Handle
	ns    netns.NsHandle

	mu      sync.Mutex
	closed  bool
	hoa     netip.Addr
	home    *tunio.TunDevice
	tunnels map[uint16]dataplane.Tunnel
	uplinks map[int]link.Link // ifindex -> decap attachment
	peers   map[netip.Addr]bool
}

func newBackend(cfg dataplane.Config, progs *bpftun.Programs, h *netlink.Handle, ns netns.NsHandle) *backend {
	return &backend{
		cfg: cfg, log: cfg.Logger.With("dataplane", Name), progs: progs, h: h, ns: ns,
		tunnels: map[uint16]dataplane.Tunnel{}, uplinks: map[int]link.Link{}, peers: map[netip.Addr]bool{},
	}
}

func (b *backend) Name() string { return Name }

func (b *backend) SetTunnels(ctx context.Context, tunnels []dataplane.Tunnel) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := dataplane.CheckOpen(ctx, b.closed); err != nil {
		return err
	}
	want, lookupErr, err := dataplane.NormalizeTunnels(tunnels, func(name string, index int) (string, int, int, error) {
		return dplink.LookupLink(b.h, name, index)
	})
	if err != nil {
		return err
	}
	errs := []error{lookupErr}
	wanted := map[uint16]bool{}
	for _, t := range want {
		wanted[t.BID] = true
	}
	for bid, t := range b.tunnels {
		if !wanted[bid] {
			errs = append(errs, b.removeTunnel(t))
		}
	}
	if len(want) == 0 {
		errs = append(errs, b.removeHome())
	} else if err := b.ensureHome(want[0].HoA); err != nil {
		errs = append(errs, err)
		want = nil
	}
	for _, t := range want {
		if err := b.ensureTunnel(t); err != nil {
			errs = append(errs, fmt.Errorf("tunnel bid %d: %w", t.BID, err))
		}
	}
	errs = append(errs, b.sweep())
	return errors.Join(errs...)
}

// ensureTunnel points the maps at t's addresses and replaces its table's
// default route (the program of BID, through t's uplink and its gateway).
func (b *backend) ensureTunnel(t dataplane.Tunnel) error {
	old, had := b.tunnels[t.BID]
	if had && old.CoA != t.CoA {
		b.progs.DeleteEndpoint(old.CoA)
	}
	prog, err := b.progs.Encap(uint32(t.BID))
	if err != nil {
		return err
	}
	err = errors.Join(
		b.progs.SetTunnel(uint32(t.BID), bpftun.Endpoints{Src: t.CoA, Dst: t.HA}),
		b.progs.SetEndpoint(t.CoA, uint32(t.BID)),
		b.allowPeer(t.HA),
		b.attachDecap(t.Ifindex))
	if err != nil {
		return err
	}
	gw, err := b.gateway(t)
	if err != nil {
		return err
	}
	enc := &netlink.BpfEncap{}
	if err := enc.SetProg(nl.LWT_BPF_XMIT, prog.FD(), fmt.Sprintf("mcoa_bid%d", t.BID)); err != nil {
		return err
	}
	if err := enc.SetXmitHeadroom(bpftun.HeaderLen); err != nil {
		return err
	}
	r := &netlink.Route{
		Table: int(b.cfg.Table(t.BID)), Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		LinkIndex: t.Ifindex, Gw: gw.AsSlice(), Src: t.HoA.AsSlice(), Encap: enc, MTU: t.MTU,
		Family: unix.AF_INET6,
	}
	if err := b.h.RouteReplace(r); err != nil {
		return fmt.Errorf("route default via %s dev %s table %d: %w", gw, t.Iface, r.Table, err)
	}
	if !had || old != t {
		b.log.Info("tunnel up", "bid", t.BID, "coa", t.CoA, "iface", t.Iface, "via", gw, "ha", t.HA, "mtu", t.MTU)
	}
	b.tunnels[t.BID] = t
	return nil
}

// gateway is the next hop from t's care-of address to the home agent on
// its uplink (the home agent itself when it is on that link): the outer
// packet leaves by BPF_OK through the route's gateway.
func (b *backend) gateway(t dataplane.Tunnel) (netip.Addr, error) {
	rs, err := b.h.RouteGetWithOptions(t.HA.AsSlice(), &netlink.RouteGetOptions{OifIndex: t.Ifindex, SrcAddr: t.CoA.AsSlice()})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route from %s to the home agent %s on %s: %w", t.CoA, t.HA, t.Iface, err)
	}
	for _, r := range rs {
		if gw, ok := netip.AddrFromSlice(r.Gw); ok && r.Gw != nil {
			return gw, nil
		}
	}
	return t.HA, nil
}

func (b *backend) allowPeer(a netip.Addr) error {
	if b.peers[a] {
		return nil
	}
	if err := b.progs.AllowPeer(a); err != nil {
		return err
	}
	b.peers[a] = true
	return nil
}

func (b *backend) attachDecap(ifindex int) error {
	if b.uplinks[ifindex] != nil {
		return nil
	}
	return inNetns(b.ns, func() error {
		l, err := bpftun.AttachIngress(b.progs.Decap(), ifindex)
		if err != nil {
			return err
		}
		b.uplinks[ifindex] = l
		return nil
	})
}

func (b *backend) removeTunnel(t dataplane.Tunnel) error {
	delete(b.tunnels, t.BID)
	r := &netlink.Route{Table: int(b.cfg.Table(t.BID)), Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, Family: unix.AF_INET6}
	err := b.h.RouteDel(r)
	if errors.Is(err, unix.ESRCH) {
		err = nil
	}
	b.log.Info("tunnel down", "bid", t.BID, "coa", t.CoA, "iface", t.Iface)
	return errors.Join(err, b.progs.DeleteTunnel(uint32(t.BID)), b.progs.DeleteEndpoint(t.CoA))
}

// sweep detaches the decap program from uplinks no tunnel uses and stops
// accepting peers no tunnel names.
func (b *backend) sweep() error {
	usedIf, usedPeer := map[int]bool{}, map[netip.Addr]bool{}
	for _, t := range b.tunnels {
		usedIf[t.Ifindex], usedPeer[t.HA] = true, true
	}
	var errs []error
	for ifi, l := range b.uplinks {
		if !usedIf[ifi] {
			errs = append(errs, l.Close())
			delete(b.uplinks, ifi)
		}
	}
	for a := range b.peers {
		if !usedPeer[a] {
			errs = append(errs, b.progs.DenyPeer(a))
			delete(b.peers, a)
		}
	}
	return errors.Join(errs...)
}

// ensureHome makes the home device (a TUN device nothing routes into: this
// kernel, like many, has no dummy module) hold exactly hoa.
func (b *backend) ensureHome(hoa netip.Addr) error {
	if b.home == nil {
		err := inNetns(b.ns, func() (err error) {
			b.home, err = tunio.OpenConfiguredTUN(b.h, b.cfg.HomeDevice, dataplane.MinMTU, false)
			return err
		})
		if err != nil {
			return fmt.Errorf("home device: %w", err)
		}
	}
	if b.hoa == hoa {
		return nil
	}
	if err := dplink.MoveHomeAddr(b.h, b.home.Index, b.hoa, hoa); err != nil {
		return err
	}
	b.hoa = hoa
	return nil
}

// removeHome closes the home device, which removes it with its address.
func (b *backend) removeHome() error {
	if b.home == nil {
		return nil
	}
	err := b.home.Close()
	b.home, b.hoa = nil, netip.Addr{}
	return err
}

var _ dataplane.Entrances = (*backend)(nil)

// Entrances are the tunnels whose routes are in place, each named by its
// uplink.
func (b *backend) Entrances() map[uint16]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[uint16]string, len(b.tunnels))
	for bid, t := range b.tunnels {
		out[bid] = t.Iface
	}
	return out
}

// Stats returns the programs' counters by BID; drops by reason.
func (b *backend) Stats() dataplane.Stats {
	out := dataplane.Stats{Tunnels: map[uint16]dataplane.Counters{}}
	st, err := b.progs.Stats()
	if err != nil {
		b.log.Warn("reading the tunnel counters", "err", err)
	}
	b.mu.Lock()
	for bid := range b.tunnels {
		s := st[uint32(bid)]
		out.Tunnels[bid] = dataplane.Counters{TxPackets: s.TxPackets, TxBytes: s.TxBytes, RxPackets: s.RxPackets, RxBytes: s.RxBytes}
	}
	b.mu.Unlock()
	if d, err := b.progs.Drops(); err == nil {
		out.Drops.Malformed = d[bpftun.DropMalformed] + d[bpftun.DropECN]
		out.Drops.Spoofed = d[bpftun.DropSpoofed]
		out.Drops.NotHome = d[bpftun.DropNotHome]
		out.Drops.Unknown = d[bpftun.DropNoTunnel]
		out.Drops.WriteErr = d[bpftun.DropEncap] + d[bpftun.DropDecap]
	}
	return out
}

// Close removes every route, attachment and the home device, and unloads
// the programs.
func (b *backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closeLocked()
}

// closeLocked is Close with b.mu held (Keep falls back to it).
func (b *backend) closeLocked() error {
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	for _, t := range b.tunnels {
		errs = append(errs, b.removeTunnel(t))
	}
	errs = append(errs, b.sweep(), b.removeHome(), b.progs.Close())
	b.h.Close()
	b.ns.Close()
	return errors.Join(errs...)
}
