package iface

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv6"
)

// raKernel listens for Router Advertisements in one network namespace,
// which only threads that never leave it (inNS) enter.
type raKernel struct {
	ns  netns.NsHandle // netns.None(): the caller's namespace
	log *slog.Logger
}

func openRA(name string, log *slog.Logger) (raSource, error) {
	ns := netns.None()
	if name != "" {
		var err error
		if strings.ContainsRune(name, '/') {
			ns, err = netns.GetFromPath(name)
		} else {
			ns, err = netns.GetFromName(name)
		}
		if err != nil {
			return nil, fmt.Errorf("network namespace %q: %w", name, err)
		}
	}
	return &raKernel{ns: ns, log: log}, nil
}

func (k *raKernel) Close() error {
	if k.ns.IsOpen() {
		return k.ns.Close()
	}
	return nil
}

// inNS runs fn in the namespace on a thread that never returns to the Go
// scheduler: sockets fn opens belong to the namespace, and no other
// goroutine ever runs there.
func (k *raKernel) inNS(fn func() error) error {
	if !k.ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread exits with this goroutine.
		if err := netns.Set(k.ns); err != nil {
			errc <- fmt.Errorf("entering the namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

var allRouters = netip.MustParseAddr("ff02::2")

// RFC 4861 section 10: MAX_RTR_SOLICITATIONS, RTR_SOLICITATION_INTERVAL.
const (
	maxRtrSolicitations     = 3
	rtrSolicitationInterval = 4 * time.Second
)

// listenRA opens an ICMPv6 socket on the link (from its link-local address,
// inside the namespace), sends a Router Solicitation, and hands every valid
// Router Advertisement to deliver.
func (k *raKernel) listenRA(ifindex int, mac net.HardwareAddr, deliver func(raInfo) bool) (io.Closer, error) {
	// The zone is the index in decimal: a zone name would be resolved
	// against the process's cached interface table, which is the table of
	// whatever namespace filled it.
	ifi := &net.Interface{Index: ifindex, Name: strconv.Itoa(ifindex), MTU: 1500, HardwareAddr: mac,
		Flags: net.FlagUp | net.FlagMulticast}
	var c *ndp.Conn
	err := k.inNS(func() error {
		var err error
		c, _, err = ndp.Listen(ifi, ndp.LinkLocal)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening for router advertisements: %w", err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterAdvertisement)
	if err := c.SetICMPFilter(&f); err != nil {
		c.Close()
		return nil, fmt.Errorf("ICMPv6 filter: %w", err)
	}
	if err := c.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("hop limit control message: %w", err)
	}
	rs := &ndp.RouterSolicitation{}
	if len(mac) > 0 {
		rs.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}
	}
	solicit := func() {
		if err := c.WriteTo(rs, nil, allRouters); err != nil {
			k.log.Debug("router solicitation", "ifindex", ifindex, "err", err)
		}
	}
	go func() {
		solicit()
		sent, heard := 1, false
		c.SetReadDeadline(time.Now().Add(rtrSolicitationInterval))
		buf := make([]byte, 65536)
		for {
			n, cm, src, err := c.ReadRaw(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if !heard && sent < maxRtrSolicitations {
					solicit()
					sent++
					c.SetReadDeadline(time.Now().Add(rtrSolicitationInterval))
				} else {
					c.SetReadDeadline(time.Time{})
				}
				continue
			}
			if err != nil {
				return // closed
			}
			// RFC 4861 6.1.2: hop limit 255 and a link-local source.
			if (cm != nil && cm.HopLimit != 255) || !src.IsLinkLocalUnicast() {
				continue
			}
			info, err := parseRA(buf[:n], src)
			if err != nil {
				k.log.Debug("ignoring a router advertisement", "ifindex", ifindex, "from", src, "err", err)
				continue
			}
			if !heard {
				heard = true
				c.SetReadDeadline(time.Time{})
			}
			if !deliver(info) {
				return
			}
		}
	}()
	return c, nil
}
