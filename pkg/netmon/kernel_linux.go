package netmon

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nlKernel is the real netlink side in one namespace, held by a handle: the
// library enters it on a locked thread for each socket it opens, so no
// goroutine of ours ever changes namespace.
type nlKernel struct {
	ns     netns.NsHandle
	h      *netlink.Handle
	rcvBuf int
}

func openKernel(cfg *Config) (kernel, error) {
	var ns netns.NsHandle
	var err error
	switch {
	case cfg.NetNS == "":
		// Pinned now: a later resubscription runs on another thread.
		ns, err = netns.Get()
	case strings.ContainsRune(cfg.NetNS, '/'):
		ns, err = netns.GetFromPath(cfg.NetNS)
	default:
		ns, err = netns.GetFromName(cfg.NetNS)
	}
	if err != nil {
		return nil, fmt.Errorf("netmon: network namespace %q: %w", cfg.NetNS, err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netmon: netlink: %w", err)
	}
	k := &nlKernel{ns: ns, h: h, rcvBuf: cfg.RecvBuffer}
	if k.rcvBuf <= 0 {
		k.rcvBuf = DefaultRecvBuffer
	}
	return k, nil
}

func (k *nlKernel) Close() error {
	k.h.Close()
	return k.ns.Close()
}

func (k *nlKernel) subscribe(routes bool) (subscription, error) {
	groups := []uint{unix.RTNLGRP_LINK, unix.RTNLGRP_IPV6_IFADDR}
	if routes {
		groups = append(groups, unix.RTNLGRP_IPV6_ROUTE, unix.RTNLGRP_IPV6_RULE)
	}
	s, err := nl.SubscribeAt(k.ns, netns.None(), unix.NETLINK_ROUTE, groups...)
	if err != nil {
		return nil, err
	}
	// SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it take what rmem_max allows.
	if s.SetReceiveBufferSize(k.rcvBuf, true) != nil {
		s.SetReceiveBufferSize(k.rcvBuf, false)
	}
	return nlSubscription{s}, nil
}

type nlSubscription struct{ s *nl.NetlinkSocket }

func (s nlSubscription) receive() ([]update, error) {
	msgs, _, err := s.s.Receive()
	if err != nil {
		return nil, err
	}
	return decode(msgs), nil
}

func (s nlSubscription) Close() error {
	s.s.Close()
	return nil
}

func (k *nlKernel) dump(links, routing bool) (*dump, error) {
	d := &dump{routing: routing}
	var err error
	if links {
		if d.links, err = retry(k.h.LinkList); err != nil {
			return nil, fmt.Errorf("links: %w", err)
		}
		if d.addrs, err = retry(func() ([]netlink.Addr, error) { return k.h.AddrList(nil, netlink.FAMILY_V6) }); err != nil {
			return nil, fmt.Errorf("addresses: %w", err)
		}
	}
	if !routing {
		return d, nil
	}
	all := &netlink.Route{Table: unix.RT_TABLE_UNSPEC}
	if d.routes, err = retry(func() ([]netlink.Route, error) {
		return k.h.RouteListFiltered(netlink.FAMILY_V6, all, netlink.RT_FILTER_TABLE)
	}); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	if d.rules, err = retry(func() ([]netlink.Rule, error) { return k.h.RuleList(netlink.FAMILY_V6) }); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return d, nil
}

// retry repeats a dump the kernel interrupted (the state changed under
// it); the change's notification follows anyway.
func retry[T any](list func() ([]T, error)) ([]T, error) {
	var err error
	for range 3 {
		var l []T
		if l, err = list(); !errors.Is(err, netlink.ErrDumpInterrupted) && !errors.Is(err, unix.EINTR) {
			return l, err
		}
	}
	return nil, err
}
