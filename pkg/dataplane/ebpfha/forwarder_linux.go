package ebpfha

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/bpftun"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/relay"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/tunio"
)

var _ dataplane.HomeAgent = (*Forwarder)(nil)

// Forwarder is the home agent's data plane on eBPF: dataplane.HomeAgent,
// as the TUN forwarder (pkg/dataplane/homeagent). Every home address
// with bindings, and every mobile network prefix, has a route into the
// device (a TUN device nothing reads) carrying the encap program, which
// picks the binding in the kernel (the flow's, else its peer's, else the
// best) and re-routes the outer packet; the decap program on every link
// of the namespace takes tunnel packets from registered care-of addresses
// only. Home ids are assigned per home address.
//
// The uplinks are the namespace's links when New runs. IPv6 forwarding
// must be on; pulling home-address packets off the home link is
// ProxyND's job, as with the TUN forwarder.
type Forwarder struct {
	cfg  dataplane.HAConfig
	home *bpftun.Home
	h    *netlink.Handle
	dev  *tunio.TunDevice
	ups  []link.Link // decap attachments

	mu     sync.Mutex
	closed bool
	ids    map[netip.Addr]uint16 // home address -> home id
	routed map[netip.Prefix]bool
	// base holds what the maps counted for each current binding before
	// it came (the maps keep a gone binding's counts, and a home id's
	// when another home address takes it): Stats subtracts it, so that a
	// binding's counters start at zero as the TUN forwarder's do.
	base map[dataplane.BindingKey]bpftun.Stats
}

// New loads the programs, creates the device and attaches the decap
// program to every link, in the network namespace of the calling thread.
func New(cfg *dataplane.HAConfig) (*Forwarder, error) {
	c, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	f := &Forwarder{cfg: c, ids: map[netip.Addr]uint16{}, routed: map[netip.Prefix]bool{}, base: map[dataplane.BindingKey]bpftun.Stats{}}
	if f.home, err = bpftun.LoadHome(c.Address); err != nil {
		return nil, err
	}
	if err := f.open(); err != nil {
		f.release()
		return nil, err
	}
	dataplane.WarnIfNotForwarding(c.Logger)
	return f, nil
}

// open makes the netlink handle and the device, and attaches decap.
func (f *Forwarder) open() error {
	var err error
	if f.h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		return err
	}
	if f.dev, err = tunio.OpenConfiguredTUN(f.h, f.cfg.Device, f.cfg.MTU, false); err != nil {
		return fmt.Errorf("home agent device: %w", err)
	}
	links, err := f.h.LinkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || a.Index == f.dev.Index {
			continue
		}
		at, err := bpftun.AttachIngress(f.home.Decap(), a.Index)
		if err != nil {
			return fmt.Errorf("decapsulation on %s: %w", a.Name, err)
		}
		f.ups = append(f.ups, at)
	}
	return nil
}

// ranked is a binding as relay.SortBest orders them.
type ranked dataplane.HABinding

func (b ranked) Rank() (uint8, uint16) { return b.Priority, b.BID }

// SetBindings makes the tunnelled set exactly bs (level-triggered): the
// maps first, so that a new route never finds its home without bindings,
// then the routes, then the homes that lost their last binding.
func (f *Forwarder) SetBindings(ctx context.Context, bs []dataplane.HABinding) error {
	want, err := dataplane.CheckHABindings(bs)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := dataplane.CheckOpen(ctx, f.closed); err != nil {
		return err
	}
	byHoA := map[netip.Addr][]ranked{}
	var hoas []netip.Addr // in order, for ids that do not depend on map order
	for _, b := range want {
		if byHoA[b.HoA] == nil {
			hoas = append(hoas, b.HoA)
		}
		byHoA[b.HoA] = append(byHoA[b.HoA], ranked(b))
	}
	var errs []error
	errs = append(errs, f.rebase(want))
	dsts := map[netip.Prefix]bool{}
	for _, hoa := range hoas {
		l := byHoA[hoa]
		relay.SortBest(l)
		pfx := homePrefixes(hoa, l)
		for _, p := range pfx {
			dsts[p] = true
		}
		if err := f.home.SetHome(f.idFor(hoa), pfx, bindingsOf(l)); err != nil {
			errs = append(errs, fmt.Errorf("home %s: %w", hoa, err))
		}
	}
	errs = append(errs, f.setRoutes(dsts))
	for hoa, id := range f.ids {
		if byHoA[hoa] == nil {
			errs = append(errs, f.home.DeleteHome(id))
			delete(f.ids, hoa)
		}
	}
	return errors.Join(errs...)
}

// rebase makes f.base the bindings of want: those that stay keep their
// base, those that are new get what the maps count for them now (their
// home's id as it is or will be), those that went lose theirs.
func (f *Forwarder) rebase(want []dataplane.HABinding) error {
	st, err := f.home.Stats()
	old := f.base
	f.base = make(map[dataplane.BindingKey]bpftun.Stats, len(want))
	for _, b := range want {
		k := dataplane.BindingKey{HoA: b.HoA, BID: b.BID}
		if s, ok := old[k]; ok {
			f.base[k] = s
			continue
		}
		f.base[k] = st[bpftun.HomeBID{Home: f.idFor(b.HoA), BID: b.BID}]
	}
	return err
}

// homePrefixes are the destinations of a home: its address and the mobile
// network prefixes of its bindings.
func homePrefixes(hoa netip.Addr, l []ranked) []netip.Prefix {
	out := []netip.Prefix{netip.PrefixFrom(hoa, 128)}
	for _, b := range l {
		for _, p := range b.Prefixes {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

func bindingsOf(l []ranked) []bpftun.Binding {
	out := make([]bpftun.Binding, len(l))
	for i, b := range l {
		out[i] = bpftun.Binding{CoA: b.CoA, BID: b.BID}
	}
	return out
}

// idFor returns hoa's home id, assigning the lowest free one.
func (f *Forwarder) idFor(hoa netip.Addr) uint16 {
	if id, ok := f.ids[hoa]; ok {
		return id
	}
	used := map[uint16]bool{}
	for _, id := range f.ids {
		used[id] = true
	}
	id := uint16(1)
	for used[id] {
		id++
	}
	f.ids[hoa] = id
	return id
}

// setRoutes routes exactly dsts into the device with the encap program.
func (f *Forwarder) setRoutes(dsts map[netip.Prefix]bool) error {
	var errs []error
	for dst := range dsts {
		if f.routed[dst] {
			continue
		}
		r, err := f.route(dst)
		if err == nil {
			err = f.h.RouteReplace(r)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s dev %s table %d: %w", dst, f.dev.Name, f.cfg.Table, err))
			continue
		}
		f.routed[dst] = true
	}
	for dst := range f.routed {
		if dsts[dst] {
			continue
		}
		r := &netlink.Route{Family: netlink.FAMILY_V6, Dst: ipNet(dst), LinkIndex: f.dev.Index, Table: f.cfg.Table}
		if err := f.h.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("route %s dev %s: delete: %w", dst, f.dev.Name, err))
		}
		delete(f.routed, dst)
	}
	return errors.Join(errs...)
}

// route is dst into the device with the encapsulation: 40 octets of
// headroom (or full-size packets that are not GSO are dropped) and the
// tunnel's MTU, so that packets too big get a Packet Too Big.
func (f *Forwarder) route(dst netip.Prefix) (*netlink.Route, error) {
	enc := &netlink.BpfEncap{}
	if err := enc.SetProg(nl.LWT_BPF_XMIT, f.home.Encap().FD(), "mcoa_ha"); err != nil {
		return nil, err
	}
	if err := enc.SetXmitHeadroom(bpftun.HeaderLen); err != nil {
		return nil, err
	}
	return &netlink.Route{Family: netlink.FAMILY_V6, Dst: ipNet(dst), LinkIndex: f.dev.Index, Table: f.cfg.Table,
		Encap: enc, MTU: f.cfg.MTU}, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}
}

// Stats returns the programs' counters of the current bindings and the
// drops by reason, as the TUN forwarder names them.
func (f *Forwarder) Stats() dataplane.BindingStats {
	out := dataplane.BindingStats{Bindings: map[dataplane.BindingKey]dataplane.Counters{}}
	st, err := f.home.Stats()
	if err != nil {
		f.cfg.Logger.Warn("reading the tunnel counters", "err", err)
	}
	f.mu.Lock()
	for k, b := range f.base {
		s := st[bpftun.HomeBID{Home: f.ids[k.HoA], BID: k.BID}]
		out.Bindings[k] = dataplane.Counters{TxPackets: s.TxPackets - b.TxPackets, TxBytes: s.TxBytes - b.TxBytes,
			RxPackets: s.RxPackets - b.RxPackets, RxBytes: s.RxBytes - b.RxBytes}
	}
	f.mu.Unlock()
	if d, err := f.home.Drops(); err == nil {
		out.Drops = dataplane.Drops{
			Malformed: d[bpftun.DropMalformed] + d[bpftun.DropECN],
			NotHome:   d[bpftun.DropNotHome],
			NoBinding: d[bpftun.DropNoTunnel] + d[bpftun.DropNoBinding],
			Spoofed:   d[bpftun.DropSpoofed],
			WriteErr:  d[bpftun.DropEncap] + d[bpftun.DropDecap],
		}
	}
	return out
}

// Close removes the routes, the attachments and the device, and unloads
// the programs.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	err := f.setRoutes(nil)
	return errors.Join(err, f.release())
}

// release undoes New: attachments, device, handle, programs.
func (f *Forwarder) release() error {
	var errs []error
	for _, l := range f.ups {
		errs = append(errs, l.Close())
	}
	f.ups = nil
	if f.dev != nil {
		errs = append(errs, f.dev.Close())
	}
	if f.h != nil {
		f.h.Close()
	}
	return errors.Join(append(errs, f.home.Close())...)
}
