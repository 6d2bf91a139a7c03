package dataplane

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
	cfg Config
	log *slog.Logger
	run *nsRunner
	nl  *netlink.Handle

	mu      sync.Mutex // serializes SetTunnels and Close
	closed  bool
	home    *tunDevice
	hoa     netip.Addr
	tunnels map[uint16]*mnTunnel
	rx      *rawSocket
	rxDone  chan struct{}
	rxStop  atomic.Bool

	rxTab atomic.Pointer[mnRxTable]
	drops dropCounters

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
	dev      *tunDevice
	path     atomic.Pointer[txPath]
	ctr      tunnelCounters
	stopping atomic.Bool
	done     chan struct{}
	mtu      int // device MTU, owner only
}

// txPath is where a BID's packets go now; replaced whole on a change of
// CoA, interface or MTU, so the sending goroutine never sees half of one.
type txPath struct {
	t             Tunnel
	sock          *rawSocket
	src, dst, hoa [16]byte
	mtu           int
}

func newTUNBackend(cfg Config) (*tunBackend, error) {
	run, err := newNSRunner()
	if err != nil {
		return nil, err
	}
	b := &tunBackend{cfg: cfg, log: cfg.Logger.With("dataplane", "tun"), run: run, tunnels: map[uint16]*mnTunnel{}}
	err = run.do(func() error {
		if err := unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK); err != nil {
			return fmt.Errorf("%w: /dev/net/tun: %w", ErrUnavailable, err)
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("dataplane: netlink: %w", err)
		}
		b.nl = h
		return nil
	})
	if err != nil {
		run.close()
		return nil, err
	}
	b.rxTab.Store(&mnRxTable{byCoA: map[[16]byte]mnRxEntry{}})
	if len(cfg.Adopt) > 0 {
		if err := run.do(func() error { return b.adopt(cfg.Adopt) }); err != nil {
			b.log.Warn("kept tunnels not adopted: they are made again as bindings register", "err", err)
		}
	}
	return b, nil
}

// adopt attaches to the devices a previous process kept (Keep) and
// carries their packets at once; a kept device it cannot use is deleted.
// It runs on the namespace's thread.
func (b *tunBackend) adopt(kept []Tunnel) error {
	isTUN := func(name string) bool {
		l, err := b.nl.LinkByName(name)
		return err == nil && l.Type() == "tuntap"
	}
	var want []Tunnel
	var errs []error
	if isTUN(b.cfg.HomeDevice) {
		for _, t := range kept {
			if isTUN(DeviceName(t.BID)) {
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
			b.deleteKept(DeviceName(t.BID))
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

func (b *tunBackend) Name() string { return BackendTUN }

// lookupLink resolves an interface by name or index: name, index, MTU.
func lookupLink(h *netlink.Handle, name string, index int) (string, int, int, error) {
	var l netlink.Link
	var err error
	if name != "" {
		l, err = h.LinkByName(name)
	} else {
		l, err = h.LinkByIndex(index)
	}
	if err != nil {
		return "", 0, 0, err
	}
	a := l.Attrs()
	return a.Name, a.Index, a.MTU, nil
}

func (b *tunBackend) SetTunnels(ctx context.Context, tunnels []Tunnel) error {
	return b.do(ctx, func() error { return b.reconcile(tunnels) })
}

// do runs f, a setter's work, on the namespace's thread under the mutex.
func (b *tunBackend) do(ctx context.Context, f func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := checkOpen(ctx, b.closed); err != nil {
		return err
	}
	return b.run.do(f)
}

// reconcile runs on the namespace's thread.
func (b *tunBackend) reconcile(in []Tunnel) error {
	want, lookupErr, err := normalizeTunnels(in, func(name string, index int) (string, int, int, error) {
		return lookupLink(b.nl, name, index)
	})
	if err != nil {
		return err
	}
	for i := range want {
		want[i].MTU = min(want[i].MTU, maxOuter-ipv6HeaderLen)
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
			b.home.close()
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
		b.log.Warn("home device vanished: making it again", "dev", b.home.name)
		b.home.close()
		b.home, b.hoa = nil, netip.Addr{}
	}
	if b.home == nil {
		dev, err := b.openDevice(b.cfg.HomeDevice, minMTU)
		if err != nil {
			return fmt.Errorf("home device: %w", err)
		}
		b.home = dev
	}
	if b.hoa == hoa {
		return nil
	}
	link, err := b.nl.LinkByIndex(b.home.index)
	if err != nil {
		return fmt.Errorf("home device: %w", err)
	}
	if b.hoa.IsValid() {
		b.nl.AddrDel(link, homeAddr(b.hoa))
	}
	if err := b.nl.AddrReplace(link, homeAddr(hoa)); err != nil {
		return fmt.Errorf("home address %s on %s: %w", hoa, b.home.name, err)
	}
	b.hoa = hoa // the tables' preferred sources follow in ensureTunnel
	return nil
}

func homeAddr(hoa netip.Addr) *netlink.Addr {
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: hoa.AsSlice(), Mask: net.CIDRMask(128, 128)},
		// No DAD: the home agent defends the address on the home link; no
		// prefix route: nothing is routed into the home device.
		Flags: unix.IFA_F_NODAD | unix.IFA_F_NOPREFIXROUTE,
	}
}

// openDevice creates a TUN device without IPv6 address generation (no
// link-local address, so no Router Solicitations or MLD reports of its own),
// sets its MTU and brings it up.
func (b *tunBackend) openDevice(name string, mtu int) (*tunDevice, error) {
	return openConfiguredTUN(b.nl, name, mtu, !b.cfg.NoOffload && name != b.cfg.HomeDevice)
}

func openConfiguredTUN(h *netlink.Handle, name string, mtu int, offload bool) (*tunDevice, error) {
	dev, err := openTUN(name, offload)
	if err != nil {
		return nil, err
	}
	link, err := h.LinkByName(name)
	if err == nil {
		dev.index = link.Attrs().Index
		err = h.LinkSetIP6AddrGenMode(link, 1) // IN6_ADDR_GEN_MODE_NONE
	}
	if err == nil {
		err = h.LinkSetMTU(link, mtu)
	}
	if err == nil {
		err = h.LinkSetUp(link)
	}
	if err != nil {
		dev.close()
		return nil, fmt.Errorf("tun %s: %w", name, err)
	}
	return dev, nil
}

func (b *tunBackend) ensureRx() error {
	if b.rx != nil {
		return nil
	}
	// A raw socket for protocol 41 gets every tunnelled packet; while it
	// is open the kernel, which has no handler for 41 without ip6_tunnel,
	// does not answer them with ICMPv6 parameter problems either.
	s, err := newRawSocket(protoIPv6, 0, "")
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
	b.rx.close()
	<-b.rxDone
	b.rx = nil
}

func (b *tunBackend) routeTunnel(t *mnTunnel) error {
	r := &netlink.Route{
		Family:    netlink.FAMILY_V6,
		Dst:       &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		LinkIndex: t.dev.index,
		Table:     int(b.cfg.Table(t.bid)),
		Src:       b.hoa.AsSlice(),
	}
	if err := b.nl.RouteReplace(r); err != nil {
		return fmt.Errorf("route default dev %s table %d src %s: %w", t.dev.name, r.Table, b.hoa, err)
	}
	return nil
}

// exists tells whether someone deleted a device of ours behind our back.
func (b *tunBackend) exists(dev *tunDevice) bool {
	l, err := b.nl.LinkByIndex(dev.index)
	return err == nil && l.Attrs().Name == dev.name
}

func (b *tunBackend) ensureTunnel(want Tunnel) error {
	t := b.tunnels[want.BID]
	if t != nil && !b.exists(t.dev) {
		b.log.Warn("tunnel device vanished: making it again", "dev", t.dev.name)
		b.removeTunnel(t)
		t = nil
	}
	if t == nil {
		dev, err := b.openDevice(DeviceName(want.BID), want.MTU)
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
		b.log.Info("tunnel up", "bid", want.BID, "dev", dev.name, "coa", want.CoA, "iface", want.Iface, "ha", want.HA, "mtu", want.MTU)
	} else if p := t.path.Load(); p.t != want {
		if err := b.setPath(t, want); err != nil {
			return err
		}
		b.log.Info("tunnel changed", "bid", want.BID, "coa", want.CoA, "iface", want.Iface, "ha", want.HA, "mtu", want.MTU)
	}
	if t.mtu != want.MTU {
		link, err := b.nl.LinkByIndex(t.dev.index)
		if err == nil {
			err = b.nl.LinkSetMTU(link, want.MTU)
		}
		if err != nil {
			return fmt.Errorf("mtu %d on %s: %w", want.MTU, t.dev.name, err)
		}
		t.mtu = want.MTU
	}
	return b.routeTunnel(t)
}

// setPath replaces a tunnel's path, opening a new socket when the interface
// or home agent changed.
func (b *tunBackend) setPath(t *mnTunnel, want Tunnel) error {
	old := t.path.Load()
	p := &txPath{t: want, mtu: want.MTU, src: want.CoA.As16(), dst: want.HA.As16(), hoa: want.HoA.As16()}
	if old != nil && old.t.Iface == want.Iface && old.t.Ifindex == want.Ifindex && old.t.HA == want.HA {
		p.sock = old.sock
		t.path.Store(p)
		return nil
	}
	s, err := newRawSocket(unix.IPPROTO_RAW, b.cfg.Mark, want.Iface)
	if err != nil {
		return err
	}
	if err := s.connect(want.HA); err != nil {
		s.close()
		return err
	}
	p.sock = s
	t.path.Store(p)
	if old != nil {
		old.sock.close() // a send in flight on it fails and is counted
	}
	return nil
}

func (b *tunBackend) removeTunnel(t *mnTunnel) {
	delete(b.tunnels, t.bid)
	b.publish()
	t.stopping.Store(true)
	t.dev.close() // the routes into it go with it
	if p := t.path.Load(); p != nil {
		p.sock.close() // ends a send that waits for buffer space
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
		lim   errLimiter
		rd    = newTunReader(t.dev)
		wb    = newMsgBatch(batchSize, false, false)
		ptb   = make([]byte, virtioNetHdrLen+minMTU)
		slots [][]byte
		ro    = b.newROTx(t) // route optimisation (ro_linux.go)
	)
	for {
		p := t.path.Load()
		if need := headroom + p.mtu + 1; len(slots) == 0 || len(slots[0]) < need {
			slots = makeSlots(batchSize, need)
		}
		n, err := rd.read(slots, p.mtu)
		if err != nil {
			if !lim.retry(&t.stopping, b.log, "tunnel read", err, "bid", t.bid) {
				return
			}
			continue
		}
		p = t.path.Load()
		k := 0
		for i := range n {
			buf, size, ok := rd.packet(i)
			if !ok {
				b.drops.malformed.Add(1)
				continue
			}
			pkt := buf[headroom:]
			if [16]byte(pkt[8:24]) != p.hoa && !mobileNets(b.cfg.MobileNetworks).contains(pkt[8:24]) {
				// Not ours to tunnel (the kernel's own packets on a
				// fresh device, a misrouted source).
				b.drops.notHome.Add(1)
				continue
			}
			if size > p.mtu {
				sendPTB(t.dev, &b.drops, ptb, pkt[:min(size, len(pkt))], p.mtu, &p.src)
				continue
			}
			if ro.add(buf, size, p) { // to a correspondent with a binding for this BID
				continue
			}
			m, err := encap(buf[:headroom+size], &p.src, &p.dst)
			if err != nil {
				b.drops.malformed.Add(1)
				continue
			}
			wb.set(k, buf[:m])
			k++
		}
		ro.flush()
		if k == 0 {
			continue
		}
		sent, err := p.sock.send(wb, k)
		var bytes uint64
		for i := range k {
			bytes += uint64(len(wb.bufs[i]) - headroom)
		}
		for _, i := range p.sock.failed {
			bytes -= uint64(len(wb.bufs[i]) - headroom)
		}
		t.ctr.txPackets.Add(uint64(sent))
		t.ctr.txBytes.Add(bytes)
		if sent < k {
			t.ctr.txErrors.Add(uint64(k - sent))
			if err != nil && lim.ok() {
				b.log.Warn("tunnel send", "bid", t.bid, "iface", p.t.Iface, "err", err)
			}
		}
	}
}

// rxLoop is the receiving pipeline: raw socket -> decapsulate -> TUN.
func (b *tunBackend) rxLoop(s *rawSocket, done chan struct{}) {
	defer close(done)
	rx := newRxPipe(rxSlot, true, true)
	var meta rxMeta
	rx.run(s, &b.rxStop, b.log, "tunnel receive", &b.drops, func(n int) {
		tab := b.rxTab.Load()
		for i := range n {
			rx.rb.meta(i, &meta)
			e, ok := tab.byCoA[meta.dst]
			if !ok || meta.src != e.ha {
				b.drops.unknown.Add(1)
				continue
			}
			inner := rx.packet(i)
			if meta.trunc || inner == nil {
				b.drops.malformed.Add(1)
				continue
			}
			m, err := decapInner(inner, meta.tclass)
			if err != nil {
				b.drops.malformed.Add(1)
				continue
			}
			if [16]byte(inner[24:40]) != tab.hoa && !mobileNets(b.cfg.MobileNetworks).contains(inner[24:40]) {
				b.drops.notHome.Add(1)
				continue
			}
			if !rx.wr.add(e.t.dev, rx.bufs[i][:virtioNetHdrLen+m], e.t.path.Load().mtu) {
				b.drops.malformed.Add(1)
				continue
			}
			e.t.ctr.rxPackets.Add(1)
			e.t.ctr.rxBytes.Add(uint64(m))
		}
	})
}

func (b *tunBackend) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Stats{Tunnels: make(map[uint16]Counters, len(b.tunnels)), Drops: b.drops.snapshot()}
	for bid, t := range b.tunnels {
		st.Tunnels[bid] = t.ctr.snapshot()
	}
	return st
}

// Keep ends the backend for a restart: the devices become persistent and
// stay, with their routes and the home address; the receive loop reads
// until the end. See Keeper.
func (b *tunBackend) Keep() ([]Tunnel, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	b.closed = true
	var kept []Tunnel
	err := b.run.do(func() error {
		if b.home == nil || len(b.tunnels) == 0 {
			return b.reconcile(nil)
		}
		if err := b.home.setPersist(true); err != nil {
			return errors.Join(err, b.reconcile(nil))
		}
		var errs []error
		for _, t := range b.tunnels {
			if err := t.dev.setPersist(true); err != nil {
				errs = append(errs, err)
				b.removeTunnel(t)
				continue
			}
			kept = append(kept, t.path.Load().t)
		}
		if len(kept) == 0 {
			errs = append(errs, b.home.setPersist(false))
			return errors.Join(append(errs, b.reconcile(nil))...)
		}
		for _, t := range b.tunnels {
			t.stopping.Store(true)
			t.dev.close() // persistent: the device and its routes stay
			t.path.Load().sock.close()
			<-t.done
		}
		b.stopRx()
		b.home.close()
		b.tunnels, b.home = map[uint16]*mnTunnel{}, nil
		return errors.Join(errs...)
	})
	b.ro.close()
	b.nl.Close()
	b.run.close()
	slices.SortFunc(kept, func(x, y Tunnel) int { return int(x.BID) - int(y.BID) })
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
	err := b.run.do(func() error { return b.reconcile(nil) })
	b.ro.close()
	b.nl.Close()
	b.run.close()
	return err
}
