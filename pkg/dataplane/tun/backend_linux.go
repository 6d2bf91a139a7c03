package tun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/link"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/tunio"
)

// tunBackend is the userspace data plane of the mobile node. Each BID has a
// TUN device mcoab<BID> that the default route of table TableBase+BID
// points into; one goroutine per BID reads what the kernel routes there,
// encapsulates it and sends it on a raw socket bound to the BID's
// interface. One goroutine receives every tunnelled packet from the home
// agent on a raw socket for protocol 41, decapsulates it and writes it into
// its BID's TUN device. The home address is on a TUN device of its own
// (HomeDevice) that nothing routes to, so it stays while BIDs come and go.
type tunBackend struct {
	cfg dataplane.Config
	log *slog.Logger
	run *tunio.NSRunner
	nl  *netlink.Handle

	mu      sync.Mutex // serializes SetTunnels and Close
	closed  bool
	home    *tunio.TunDevice
	hoa     netip.Addr
	tunnels map[uint16]*mnTunnel
	rx      *tunio.RawSocket
	rxDone  chan struct{}
	rxStop  atomic.Bool

	rxTab atomic.Pointer[mnRxTable]
	drops tunio.DropCounters

	ro roState // route optimisation (ro_linux.go)
}

// mnRxTable is the receive path's view: which tunnel a CoA belongs to.
type mnRxTable struct {
	hoa   [16]byte
	byCoA map[[16]byte]mnRxEntry
}

type mnRxEntry struct {
	t  *mnTunnel
	ha [16]byte
}

// mnTunnel is one BID's device and sending goroutine.
type mnTunnel struct {
	bid      uint16
	dev      *tunio.TunDevice
	path     atomic.Pointer[txPath]
	ctr      tunio.TunnelCounters
	stopping atomic.Bool
	done     chan struct{}
	mtu      int // device MTU, owner only
}

// txPath is where a BID's packets go now; replaced whole on a change of
// CoA, interface or MTU, so the sending goroutine never sees half of one.
type txPath struct {
	t             dataplane.Tunnel
	sock          *tunio.RawSocket
	src, dst, hoa [16]byte
	mtu           int
}

func newTUNBackend(cfg dataplane.Config) (*tunBackend, error) {
	run, err := tunio.NewNSRunner()
	if err != nil {
		return nil, err
	}
	b := &tunBackend{cfg: cfg, log: cfg.Logger.With("dataplane", "tun"), run: run, tunnels: map[uint16]*mnTunnel{}}
	err = run.Do(func() error {
		if err := unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK); err != nil {
			return fmt.Errorf("%w: /dev/net/tun: %w", dataplane.ErrUnavailable, err)
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("dataplane: netlink: %w", err)
		}
		b.nl = h
		return nil
	})
	if err != nil {
		run.Close()
		return nil, err
	}
	b.rxTab.Store(&mnRxTable{byCoA: map[[16]byte]mnRxEntry{}})
	if len(cfg.Adopt) > 0 {
		if err := run.Do(func() error { return b.adopt(cfg.Adopt) }); err != nil {
			b.log.Warn("kept tunnels not adopted: they are made again as bindings register", "err", err)
		}
	}
	return b, nil
}

// adopt attaches to the devices a previous process kept (Keep) and
// carries their packets at once; a kept device it cannot use is deleted.
// It runs on the namespace's thread.
func (b *tunBackend) adopt(kept []dataplane.Tunnel) error {
	isTUN := func(name string) bool {
		l, err := b.nl.LinkByName(name)
		return err == nil && l.Type() == "tuntap"
	}
	var want []dataplane.Tunnel
	var errs []error
	if isTUN(b.cfg.HomeDevice) {
		for _, t := range kept {
			if isTUN(dataplane.DeviceName(t.BID)) {
				want = append(want, t)
			}
		}
	} else {
		errs = append(errs, fmt.Errorf("home device %s is gone", b.cfg.HomeDevice))
	}
	if len(want) > 0 {
		if err := b.reconcile(want); err != nil {
			errs = append(errs, err)
		}
	}
	// Attached or not, no kept device stays persistent.
	for _, t := range kept {
		if b.tunnels[t.BID] == nil {
			b.deleteKept(dataplane.DeviceName(t.BID))
		}
	}
	if b.home == nil {
		b.deleteKept(b.cfg.HomeDevice)
	}
	bids := make([]uint16, 0, len(b.tunnels))
	for bid := range b.tunnels {
		bids = append(bids, bid)
	}
	slices.Sort(bids)
	b.log.Info("kept tunnels adopted", "bids", bids, "kept", len(kept))
	return errors.Join(errs...)
}

// deleteKept deletes a TUN device by name, if there is one.
func (b *tunBackend) deleteKept(name string) {
	if l, err := b.nl.LinkByName(name); err == nil && l.Type() == "tuntap" {
		if err := b.nl.LinkDel(l); err != nil {
			b.log.Warn("kept device not deleted", "dev", name, "err", err)
		}
	}
}

func (b *tunBackend) Name() string { return Name }

func (b *tunBackend) SetTunnels(ctx context.Context, tunnels []dataplane.Tunnel) error {
	return b.do(ctx, func() error { return b.reconcile(tunnels) })
}

// do runs f, a setter's work, on the namespace's thread under the mutex.
func (b *tunBackend) do(ctx context.Context, f func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := dataplane.CheckOpen(ctx, b.closed); err != nil {
		return err
	}
	return b.run.Do(f)
}

// reconcile runs on the namespace's thread.
func (b *tunBackend) reconcile(in []dataplane.Tunnel) error {
	want, lookupErr, err := dataplane.NormalizeTunnels(in, func(name string, index int) (string, int, int, error) {
		return link.LookupLink(b.nl, name, index)
	})
	if err != nil {
		return err
	}
	for i := range want {
		want[i].MTU = min(want[i].MTU, tunio.MaxOuter-dataplane.IPv6HeaderLen)
	}
	errs := []error{lookupErr}
	keep := map[uint16]bool{}
	for _, t := range want {
		keep[t.BID] = true
	}
	for bid, t := range b.tunnels {
		if !keep[bid] {
			b.removeTunnel(t)
		}
	}
	if len(want) == 0 {
		b.publish()
		b.stopRx()
		if b.home != nil {
			b.home.Close()
			b.home, b.hoa = nil, netip.Addr{}
		}
		return errors.Join(errs...)
	}
	if err := b.ensureHome(want[0].HoA); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := b.ensureRx(); err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, t := range want {
		if err := b.ensureTunnel(t); err != nil {
			errs = append(errs, fmt.Errorf("tunnel bid %d: %w", t.BID, err))
		}
	}
	b.publish()
	return errors.Join(errs...)
}

// ensureHome makes the home device hold exactly hoa.
func (b *tunBackend) ensureHome(hoa netip.Addr) error {
	if b.home != nil && !b.exists(b.home) {
		b.log.Warn("home device vanished: making it again", "dev", b.home.Name)
		b.home.Close()
		b.home, b.hoa = nil, netip.Addr{}
	}
	if b.home == nil {
		dev, err := b.openDevice(b.cfg.HomeDevice, dataplane.MinMTU)
		if err != nil {
			return fmt.Errorf("home device: %w", err)
		}
		b.home = dev
	}
	if b.hoa == hoa {
		return nil
	}
	if err := link.MoveHomeAddr(b.nl, b.home.Index, b.hoa, hoa); err != nil {
		return err
	}
	b.hoa = hoa // the tables' preferred sources follow in ensureTunnel
	return nil
}

// openDevice creates a TUN device without IPv6 address generation (no
// link-local address, so no Router Solicitations or MLD reports of its own),
// sets its MTU and brings it up.
func (b *tunBackend) openDevice(name string, mtu int) (*tunio.TunDevice, error) {
	return tunio.OpenConfiguredTUN(b.nl, name, mtu, !b.cfg.NoOffload && name != b.cfg.HomeDevice)
}

func (b *tunBackend) ensureRx() error {
	if b.rx != nil {
		return nil
	}
	// A raw socket for protocol 41 gets every tunnelled packet; while it
	// is open the kernel, which has no handler for 41 without ip6_tunnel,
	// does not answer them with ICMPv6 parameter problems either.
	s, err := tunio.NewRawSocket(packet.ProtoIPv6, 0, "")
	if err != nil {
		return err
	}
	b.rx, b.rxDone = s, make(chan struct{})
	b.rxStop.Store(false)
	go b.rxLoop(s, b.rxDone)
	return nil
}

func (b *tunBackend) stopRx() {
	if b.rx == nil {
		return
	}
	b.rxStop.Store(true)
	b.rx.Close()
	<-b.rxDone
	b.rx = nil
}

func (b *tunBackend) routeTunnel(t *mnTunnel) error {
	r := &netlink.Route{
		Family:    netlink.FAMILY_V6,
		Dst:       &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		LinkIndex: t.dev.Index,
		Table:     int(b.cfg.Table(t.bid)),
		Src:       b.hoa.AsSlice(),
	}
	if err := b.nl.RouteReplace(r); err != nil {
		return fmt.Errorf("route default dev %s table %d src %s: %w", t.dev.Name, r.Table, b.hoa, err)
	}
	return nil
}

// exists tells whether someone deleted a device of ours behind our back.
func (b *tunBackend) exists(dev *tunio.TunDevice) bool {
	l, err := b.nl.LinkByIndex(dev.Index)
	return err == nil && l.Attrs().Name == dev.Name
}

func (b *tunBackend) ensureTunnel(want dataplane.Tunnel) error {
	t := b.tunnels[want.BID]
	if t != nil && !b.exists(t.dev) {
		b.log.Warn("tunnel device vanished: making it again", "dev", t.dev.Name)
		b.removeTunnel(t)
		t = nil
	}
	if t == nil {
		dev, err := b.openDevice(dataplane.DeviceName(want.BID), want.MTU)
		if err != nil {
			return err
		}
		t = &mnTunnel{bid: want.BID, dev: dev, done: make(chan struct{}), mtu: want.MTU}
		b.tunnels[want.BID] = t
		if err := b.setPath(t, want); err != nil {
			b.removeTunnel(t)
			return err
		}
		go b.txLoop(t)
		b.log.Info("tunnel up", "bid", want.BID, "dev", dev.Name, "coa", want.CoA, "iface", want.Iface, "ha", want.HA, "mtu", want.MTU)
	} else if p := t.path.Load(); p.t != want {
		if err := b.setPath(t, want); err != nil {
			return err
		}
		b.log.Info("tunnel changed", "bid", want.BID, "coa", want.CoA, "iface", want.Iface, "ha", want.HA, "mtu", want.MTU)
	}
	if t.mtu != want.MTU {
		link, err := b.nl.LinkByIndex(t.dev.Index)
		if err == nil {
			err = b.nl.LinkSetMTU(link, want.MTU)
		}
		if err != nil {
			return fmt.Errorf("mtu %d on %s: %w", want.MTU, t.dev.Name, err)
		}
		t.mtu = want.MTU
	}
	return b.routeTunnel(t)
}

// setPath replaces a tunnel's path, opening a new socket when the interface
// or home agent changed.
func (b *tunBackend) setPath(t *mnTunnel, want dataplane.Tunnel) error {
	old := t.path.Load()
	p := &txPath{t: want, mtu: want.MTU, src: want.CoA.As16(), dst: want.HA.As16(), hoa: want.HoA.As16()}
	if old != nil && old.t.Iface == want.Iface && old.t.Ifindex == want.Ifindex && old.t.HA == want.HA {
		p.sock = old.sock
		t.path.Store(p)
		return nil
	}
	s, err := tunio.NewRawSocket(unix.IPPROTO_RAW, b.cfg.Mark, want.Iface)
	if err != nil {
		return err
	}
	if err := s.Connect(want.HA); err != nil {
		s.Close()
		return err
	}
	p.sock = s
	t.path.Store(p)
	if old != nil {
		old.sock.Close() // a send in flight on it fails and is counted
	}
	return nil
}

func (b *tunBackend) removeTunnel(t *mnTunnel) {
	delete(b.tunnels, t.bid)
	b.publish()
	t.stopping.Store(true)
	t.dev.Close() // the routes into it go with it
	if p := t.path.Load(); p != nil {
		p.sock.Close() // ends a send that waits for buffer space
		<-t.done
	} else {
		close(t.done) // the loop never started
	}
	b.log.Info("tunnel down", "bid", t.bid)
}

// publish gives the receive path the current tunnels.
func (b *tunBackend) publish() {
	tab := &mnRxTable{byCoA: make(map[[16]byte]mnRxEntry, len(b.tunnels))}
	if b.hoa.IsValid() {
		tab.hoa = b.hoa.As16()
	}
	for _, t := range b.tunnels {
		if p := t.path.Load(); p != nil {
			tab.byCoA[p.src] = mnRxEntry{t: t, ha: p.dst}
		}
	}
	b.rxTab.Store(tab)
}

// txLoop is BID t's sending pipeline: TUN -> encapsulate -> raw socket.
func (b *tunBackend) txLoop(t *mnTunnel) {
	defer close(t.done)
	var (
		lim   tunio.ErrLimiter
		rd    = tunio.NewTunReader(t.dev)
		wb    = tunio.NewMsgBatch(packet.BatchSize, false, false)
		ptb   = make([]byte, packet.VirtioNetHdrLen+dataplane.MinMTU)
		slots [][]byte
		ro    = b.newROTx(t) // route optimisation (ro_linux.go)
	)
	for {
		p := t.path.Load()
		if need := packet.Headroom + p.mtu + 1; len(slots) == 0 || len(slots[0]) < need {
			slots = packet.MakeSlots(packet.BatchSize, need)
		}
		n, err := rd.Read(slots, p.mtu)
		if err != nil {
			if !lim.Retry(&t.stopping, b.log, "tunnel read", err, "bid", t.bid) {
				return
			}
			continue
		}
		p = t.path.Load()
		k := 0
		for i := range n {
			buf, size, ok := rd.Packet(i)
			if !ok {
				b.drops.Malformed.Add(1)
				continue
			}
			pkt := buf[packet.Headroom:]
			if [16]byte(pkt[8:24]) != p.hoa && !mobileNets(b.cfg.MobileNetworks).contains(pkt[8:24]) {
				// Not ours to tunnel (the kernel's own packets on a
				// fresh device, a misrouted source).
				b.drops.NotHome.Add(1)
				continue
			}
			if size > p.mtu {
				tunio.SendPTB(t.dev, &b.drops, ptb, pkt[:min(size, len(pkt))], p.mtu, &p.src)
				continue
			}
			if ro.add(buf, size, p) { // to a correspondent with a binding for this BID
				continue
			}
			m, err := packet.Encap(buf[:packet.Headroom+size], &p.src, &p.dst)
			if err != nil {
				b.drops.Malformed.Add(1)
				continue
			}
			wb.Set(k, buf[:m])
			k++
		}
		ro.flush()
		if k == 0 {
			continue
		}
		sent, err := p.sock.Send(wb, k)
		var bytes uint64
		for i := range k {
			bytes += uint64(len(wb.Bufs[i]) - packet.Headroom)
		}
		for _, i := range p.sock.Failed {
			bytes -= uint64(len(wb.Bufs[i]) - packet.Headroom)
		}
		t.ctr.TxPackets.Add(uint64(sent))
		t.ctr.TxBytes.Add(bytes)
		if sent < k {
			t.ctr.TxErrors.Add(uint64(k - sent))
			if err != nil && lim.Ok() {
				b.log.Warn("tunnel send", "bid", t.bid, "iface", p.t.Iface, "err", err)
			}
		}
	}
}

// rxLoop is the receiving pipeline: raw socket -> decapsulate -> TUN.
func (b *tunBackend) rxLoop(s *tunio.RawSocket, done chan struct{}) {
	defer close(done)
	rx := tunio.NewRxPipe(tunio.RxSlot, true, true)
	var meta tunio.RxMeta
	rx.Run(s, &b.rxStop, b.log, "tunnel receive", &b.drops, func(n int) {
		tab := b.rxTab.Load()
		for i := range n {
			rx.Rb.Meta(i, &meta)
			e, ok := tab.byCoA[meta.Dst]
			if !ok || meta.Src != e.ha {
				b.drops.Unknown.Add(1)
				continue
			}
			inner := rx.Packet(i)
			if meta.Trunc || inner == nil {
				b.drops.Malformed.Add(1)
				continue
			}
			m, err := packet.DecapInner(inner, meta.Tclass)
			if err != nil {
				b.drops.Malformed.Add(1)
				continue
			}
			if [16]byte(inner[24:40]) != tab.hoa && !mobileNets(b.cfg.MobileNetworks).contains(inner[24:40]) {
				b.drops.NotHome.Add(1)
				continue
			}
			if !rx.Wr.Add(e.t.dev, rx.Bufs[i][:packet.VirtioNetHdrLen+m], e.t.path.Load().mtu) {
				b.drops.Malformed.Add(1)
				continue
			}
			e.t.ctr.RxPackets.Add(1)
			e.t.ctr.RxBytes.Add(uint64(m))
		}
	})
}

func (b *tunBackend) Stats() dataplane.Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := dataplane.Stats{Tunnels: make(map[uint16]dataplane.Counters, len(b.tunnels)), Drops: b.drops.Snapshot()}
	for bid, t := range b.tunnels {
		st.Tunnels[bid] = t.ctr.Snapshot()
	}
	return st
}

// Keep ends the backend for a restart: the devices become persistent and
// stay, with their routes and the home address; the receive loop reads
// until the end. See Keeper.
func (b *tunBackend) Keep() ([]dataplane.Tunnel, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, dataplane.ErrClosed
	}
	b.closed = true
	var kept []dataplane.Tunnel
	err := b.run.Do(func() error {
		if b.home == nil || len(b.tunnels) == 0 {
			return b.reconcile(nil)
		}
		if err := b.home.SetPersist(true); err != nil {
			return errors.Join(err, b.reconcile(nil))
		}
		var errs []error
		for _, t := range b.tunnels {
			if err := t.dev.SetPersist(true); err != nil {
				errs = append(errs, err)
				b.removeTunnel(t)
				continue
			}
			kept = append(kept, t.path.Load().t)
		}
		if len(kept) == 0 {
			errs = append(errs, b.home.SetPersist(false))
			return errors.Join(append(errs, b.reconcile(nil))...)
		}
		for _, t := range b.tunnels {
			t.stopping.Store(true)
			t.dev.Close() // persistent: the device and its routes stay
			t.path.Load().sock.Close()
			<-t.done
		}
		b.stopRx()
		b.home.Close()
		b.tunnels, b.home = map[uint16]*mnTunnel{}, nil
		return errors.Join(errs...)
	})
	b.ro.close()
	b.nl.Close()
	b.run.Close()
	slices.SortFunc(kept, func(x, y dataplane.Tunnel) int { return int(x.BID) - int(y.BID) })
	if len(kept) > 0 {
		b.log.Info("tunnels kept for the next process", "tunnels", len(kept))
	}
	return kept, err
}

func (b *tunBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	err := b.run.Do(func() error { return b.reconcile(nil) })
	b.ro.close()
	b.nl.Close()
	b.run.Close()
	return err
}
