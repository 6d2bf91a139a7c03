package policy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Watch calls kick whenever an IPv6 ip rule, or a route of a BID's table
// (TableBase+1 and up), is deleted in the network namespace of the calling
// thread, until ctx ends: someone may be removing what mcoad installed
// (systemd-networkd does), and the next Apply puts it back. kick must not
// block. The events of mcoad's own changes kick too; an Apply that finds
// nothing to do is cheap.
func Watch(ctx context.Context, cfg *Config, kick func()) error {
	c, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	s, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_IPV6_RULE, unix.RTNLGRP_IPV6_ROUTE)
	if err != nil {
		return fmt.Errorf("policy: netlink subscribe: %w", err)
	}
	stop := context.AfterFunc(ctx, s.Close)
	defer stop()
	lo, hi := c.TableBase+1, c.TableBase+0xffff
	for {
		msgs, _, err := s.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, unix.ENOBUFS) {
			kick() // events were lost: look at everything
			continue
		}
		if err != nil {
			s.Close()
			return fmt.Errorf("policy: netlink receive: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.RTM_DELRULE:
				kick()
			case unix.RTM_DELROUTE:
				if t := routeTable(m.Data); t >= lo && t <= hi {
					kick()
				}
			}
		}
	}
}

// routeTable reads the table of an RTM_DELROUTE message (RTA_TABLE, else
// the header's 8-bit table).
func routeTable(b []byte) uint32 {
	if len(b) < unix.SizeofRtMsg {
		return 0
	}
	msg := nl.DeserializeRtMsg(b)
	table := uint32(msg.Table)
	attrs, err := nl.ParseRouteAttr(b[unix.SizeofRtMsg:])
	if err != nil {
		return table
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.RTA_TABLE && len(a.Value) >= 4 {
			table = binary.NativeEndian.Uint32(a.Value)
		}
	}
	return table
}
