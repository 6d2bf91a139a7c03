package iface

import (
	"errors"
	"io"
	"net"

	"github.com/mcoad/mcoad/pkg/netmon"
	"github.com/vishvananda/netlink"
)

// backend is the kernel side: readings of links and addresses, change
// notifications, and Router Advertisement listeners. Tests replace it.
type backend interface {
	// read returns the links, the IPv6 addresses, and the links that lost
	// their carrier (or went down) since the last read, even if they are
	// back: a flap shorter than the debounce never shows in a reading.
	read() (links []netlink.Link, addrs []netlink.Addr, lost []int, err error)
	// changes receives (coalesced) when something changed; nil: never.
	changes() <-chan struct{}
	// listenRA listens for Router Advertisements on the link and sends
	// Router Solicitations; deliver returns false once the listener is
	// closed. errNoRA: the backend has no RA at all.
	listenRA(ifindex int, mac net.HardwareAddr, deliver func(raInfo) bool) (io.Closer, error)
	Close() error
}

var errNoRA = errors.New("iface: no router advertisements on this backend")

// staticBackend serves Config.Source: no notifications (Hint reads), no RA.
type staticBackend struct{ Source }

func (b staticBackend) read() ([]netlink.Link, []netlink.Addr, []int, error) {
	links, err := b.LinkList()
	if err != nil {
		return nil, nil, nil, err
	}
	addrs, err := b.AddrList(nil, familyV6)
	return links, addrs, nil, err
}

func (staticBackend) changes() <-chan struct{} { return nil }

func (staticBackend) listenRA(int, net.HardwareAddr, func(raInfo) bool) (io.Closer, error) {
	return nil, errNoRA
}

func (staticBackend) Close() error { return nil }

// raSource listens for Router Advertisements in the watched namespace.
type raSource interface {
	listenRA(ifindex int, mac net.HardwareAddr, deliver func(raInfo) bool) (io.Closer, error)
	Close() error
}

// monitorBackend reads the States of a netmon.Monitor: Config.Monitor, or
// one of its own in Config.NetNS that runs until Close.
type monitorBackend struct {
	raSource
	m       *netmon.Monitor
	ch      <-chan struct{}
	stop    func()
	stopOwn func()
	losses  map[int]uint64 // carrier losses at the last read; nil before
}

func (w *Watcher) openMonitor() (backend, error) {
	ra, err := openRA(w.cfg.NetNS, w.log)
	if err != nil {
		return nil, err
	}
	b := &monitorBackend{raSource: ra, m: w.cfg.Monitor}
	if b.m == nil {
		if b.m, b.stopOwn, err = netmon.Start(&netmon.Config{NetNS: w.cfg.NetNS, Logger: w.log}); err != nil {
			ra.Close()
			return nil, err
		}
	}
	b.ch, b.stop = b.m.Changes(netmon.Links)
	return b, nil
}

func (b *monitorBackend) read() ([]netlink.Link, []netlink.Addr, []int, error) {
	s := b.m.Current()
	var lost []int
	lost, b.losses = lostSince(b.losses, s, s.Links)
	return s.Links, s.Addrs, lost, nil
}

// lostSince returns the links whose carrier-loss count grew since prev
// (none on the first reading: prev nil), and the counts now.
func lostSince(prev map[int]uint64, s interface{ CarrierLosses(int) uint64 }, links []netlink.Link) (lost []int, now map[int]uint64) {
	now = make(map[int]uint64, len(links))
	for _, l := range links {
		i := l.Attrs().Index
		now[i] = s.CarrierLosses(i)
		if prev != nil && now[i] > prev[i] {
			lost = append(lost, i)
		}
	}
	return lost, now
}

func (b *monitorBackend) changes() <-chan struct{} { return b.ch }

func (b *monitorBackend) Close() error {
	b.stop()
	if b.stopOwn != nil {
		b.stopOwn()
	}
	return b.raSource.Close()
}
