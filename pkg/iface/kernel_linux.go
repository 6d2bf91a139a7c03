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
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// rcvBuf is the subscriptions' socket receive buffer: generous, so that a
// burst (a hundred links flapping) rarely overflows it; when it does
// (ENOBUFS) the watcher resubscribes and reads everything again. A
// variable for the overflow test.
var rcvBuf = 4 << 20

// kernel is the netlink backend in one network namespace. The namespace is
// entered only by the netlink library's own thread-locked calls and by
// threads that never leave it (inNS), never by the watcher's goroutines.
type kernel struct {
	ns  netns.NsHandle // netns.None(): the caller's namespace
	h   *netlink.Handle
	log *slog.Logger
	// hold, in tests, stalls the forwarders until closed (to overflow
	// the subscription sockets on purpose).
	hold chan struct{}

	// lost collects the links a notification showed without carrier (or
	// down) since the last read: a flap shorter than the debounce never
	// shows in a reading, yet the link may be another one when it is back.
	lostMu sync.Mutex
	lost   map[int]bool
}

// lostCarrier returns, and forgets, the links seen without carrier since
// the last call.
func (k *kernel) lostCarrier() []int {
	k.lostMu.Lock()
	defer k.lostMu.Unlock()
	out := make([]int, 0, len(k.lost))
	for idx := range k.lost {
		out = append(out, idx)
	}
	clear(k.lost)
	return out
}

func (k *kernel) noteLink(u netlink.LinkUpdate) {
	if u.Link == nil {
		return
	}
	a := u.Link.Attrs()
	if a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0 {
		return
	}
	k.lostMu.Lock()
	if k.lost == nil {
		k.lost = map[int]bool{}
	}
	k.lost[a.Index] = true
	k.lostMu.Unlock()
}

func openKernel(name string, log *slog.Logger) (*kernel, error) {
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
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		if ns.IsOpen() {
			ns.Close()
		}
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &kernel{ns: ns, h: h, log: log}, nil
}

func (k *kernel) Close() error {
	k.h.Close()
	if k.ns.IsOpen() {
		return k.ns.Close()
	}
	return nil
}

// LinkList and AddrList retry a dump the kernel interrupted (the state
// changed under it); a new event follows anyway.
func (k *kernel) LinkList() ([]netlink.Link, error) {
	var err error
	for range 3 {
		var l []netlink.Link
		if l, err = k.h.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return l, err
		}
	}
	return nil, err
}

func (k *kernel) AddrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	var err error
	for range 3 {
		var a []netlink.Addr
		if a, err = k.h.AddrList(link, family); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return a, err
		}
	}
	return nil, err
}

func (k *kernel) subscribe(done <-chan struct{}, onErr func(error)) (_, _ <-chan struct{}, err error) {
	lc := make(chan netlink.LinkUpdate, 64)
	ac := make(chan netlink.AddrUpdate, 64)
	ns := k.ns
	lo := netlink.LinkSubscribeOptions{Namespace: &ns, ErrorCallback: onErr, ListExisting: true,
		ReceiveBufferSize: rcvBuf, ReceiveBufferForceSize: true}
	if err = netlink.LinkSubscribeWithOptions(lc, done, lo); err != nil {
		// SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it take what rmem_max allows.
		lo.ReceiveBufferForceSize = false
		if err = netlink.LinkSubscribeWithOptions(lc, done, lo); err != nil {
			return nil, nil, fmt.Errorf("links: %w", err)
		}
	}
	ao := netlink.AddrSubscribeOptions{Namespace: &ns, ErrorCallback: onErr, ListExisting: true,
		ReceiveBufferSize: rcvBuf, ReceiveBufferForceSize: lo.ReceiveBufferForceSize}
	if err = netlink.AddrSubscribeWithOptions(ac, done, ao); err != nil {
		// The caller closes done, which ends the link subscription; the
		// forwarder below keeps draining it until then.
		go func() {
			for range lc {
			}
		}()
		return nil, nil, fmt.Errorf("addresses: %w", err)
	}
	// Forwarders drain the library's channels at once (the library blocks
	// on a full channel, and meanwhile its socket overflows) and coalesce
	// them into one notification.
	events := make(chan struct{}, 1)
	closed := make(chan struct{})
	var once sync.Once
	notify := func() {
		select {
		case events <- struct{}{}:
		default:
		}
	}
	end := func() {
		once.Do(func() {
			select {
			case <-done:
			default:
				close(closed)
			}
		})
	}
	hold := k.hold
	go func() {
		if hold != nil {
			<-hold
		}
		for u := range lc {
			k.noteLink(u)
			notify()
		}
		end()
	}()
	go func() {
		if hold != nil {
			<-hold
		}
		for range ac {
			notify()
		}
		end()
	}()
	return events, closed, nil
}

// inNS runs fn in the namespace on a thread that never returns to the Go
// scheduler: sockets fn opens belong to the namespace, and no other
// goroutine ever runs there.
func (k *kernel) inNS(fn func() error) error {
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
func (k *kernel) listenRA(ifindex int, mac net.HardwareAddr, deliver func(raInfo) bool) (io.Closer, error) {
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
