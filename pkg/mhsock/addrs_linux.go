package mhsock

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// addrWatcher keeps the published addrSet equal to the namespace's links
// and IPv6 addresses. It is level-triggered: any link or address
// notification (or a lost one, ENOBUFS) means "list everything again", so
// there are no incremental cases to get wrong.
type addrWatcher struct {
	log *slog.Logger
	pub *atomic.Pointer[addrSet]

	mu sync.Mutex // serialises refreshes; guards h
	h  *netlink.Handle

	events  *os.File // NETLINK_ROUTE socket subscribed to link and address groups
	closing atomic.Bool
	done    chan struct{}
}

// newAddrWatcher opens its netlink sockets in the calling thread's network
// namespace, publishes a first snapshot and starts watching.
func newAddrWatcher(pub *atomic.Pointer[addrSet], log *slog.Logger) (*addrWatcher, error) {
	// Subscribe before the first listing so that no change falls between.
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("mhsock: netlink: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{
		Family: unix.AF_NETLINK,
		Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV6_IFADDR,
	}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mhsock: netlink subscribe: %w", err)
	}
	events := os.NewFile(uintptr(fd), "mhsock-netlink")
	// The family is given so that the socket is made now, in this
	// namespace, not lazily on whatever thread runs the first request.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		events.Close()
		return nil, fmt.Errorf("mhsock: netlink: %w", err)
	}
	w := &addrWatcher{log: log, pub: pub, h: h, events: events, done: make(chan struct{})}
	if err := w.refresh(); err != nil {
		events.Close()
		h.Close()
		return nil, err
	}
	go w.run()
	return w, nil
}

func (w *addrWatcher) run() {
	defer close(w.done)
	rc, err := w.events.SyscallConn()
	if err != nil {
		w.log.Error("mhsock: address watcher stopped", "err", err)
		return
	}
	buf := make([]byte, 16<<10)
	for {
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			// Drain everything queued: one refresh covers a burst.
			got := false
			for {
				_, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
				switch err {
				case nil, unix.ENOBUFS: // ENOBUFS: events were lost; relisting recovers
					got = true
					continue
				case unix.EINTR:
					continue
				case unix.EAGAIN:
					return got
				default:
					rerr = err
					return true
				}
			}
		})
		if err != nil {
			if !w.closing.Load() {
				w.log.Error("mhsock: address watcher stopped", "err", err)
			}
			return
		}
		if rerr != nil {
			w.log.Error("mhsock: address watcher stopped", "err", rerr)
			return
		}
		if err := w.refresh(); err != nil {
			w.log.Warn("mhsock: address refresh", "err", err)
		}
	}
}

// refresh lists links and IPv6 addresses and publishes a new snapshot.
func (w *addrWatcher) refresh() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.h == nil {
		return net.ErrClosed
	}
	links, err := w.h.LinkList()
	if err != nil {
		return fmt.Errorf("mhsock: list links: %w", err)
	}
	addrs, err := w.h.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		return fmt.Errorf("mhsock: list addresses: %w", err)
	}
	s := &addrSet{
		owner:     make(map[netip.Addr]int, len(addrs)),
		linkLocal: make(map[llKey]struct{}),
		names:     make(map[int]string, len(links)),
		loopback:  make(map[int]bool),
	}
	for _, l := range links {
		a := l.Attrs()
		s.names[a.Index] = a.Name
		if a.Flags&net.FlagLoopback != 0 {
			s.loopback[a.Index] = true
		}
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IPNet.IP)
		if !ok || a.Flags&unix.IFA_F_DADFAILED != 0 {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLinkLocalUnicast() {
			s.linkLocal[llKey{ip, a.LinkIndex}] = struct{}{}
			continue
		}
		if _, dup := s.owner[ip]; !dup {
			s.owner[ip] = a.LinkIndex
		}
	}
	w.pub.Store(s)
	return nil
}

func (w *addrWatcher) close() {
	w.closing.Store(true)
	w.events.Close()
	<-w.done
	w.mu.Lock()
	w.h.Close()
	w.h = nil
	w.mu.Unlock()
}
