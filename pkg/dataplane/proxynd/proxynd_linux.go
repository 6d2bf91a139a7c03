// Package proxynd pulls home-address traffic off the home link for the home
// agent: proxy neighbour entries and unsolicited Neighbor Advertisements
// (RFC 6275 10.4.1, draft section 3.3).
package proxynd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Proxy defends home addresses on the home link for the home agent: while
// a home address has at least one binding, the kernel answers neighbour
// solicitations for it with the home agent's link-layer address (a proxy
// neighbour entry, NTF_PROXY), and Proxy multicasts unsolicited Neighbor
// Advertisements so that hosts on the home link update stale caches at once
// (RFC 6275 10.4.1). When the last binding goes, the entry is removed and the
// mobile node, if it is back home, answers for itself.
type Proxy struct {
	ifi *net.Interface
	log *slog.Logger

	mu     sync.Mutex
	active map[netip.Addr]bool
	conn   *ndp.Conn // nil until it can be opened; proxying works without it
	h      *netlink.Handle
}

// New prepares proxying on the home link ifname in the current network
// namespace: it switches on the interface's proxy_ndp sysctl.
func New(ifname string, log *slog.Logger) (*Proxy, error) {
	if log == nil {
		log = slog.Default()
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("proxy ND: home link %q: %w", ifname, err)
	}
	// The kernel answers for proxy entries only on a forwarding interface
	// with proxy_ndp on; proxy_delay 0 answers at once instead of after a
	// random delay of up to 0.8 s, which matters for hand-overs.
	for _, kv := range [][2]string{
		{"/proc/sys/net/ipv6/conf/" + ifname + "/forwarding", "1"},
		{"/proc/sys/net/ipv6/conf/" + ifname + "/proxy_ndp", "1"},
		{"/proc/sys/net/ipv6/neigh/" + ifname + "/proxy_delay", "0"},
	} {
		if err := os.WriteFile(kv[0], []byte(kv[1]), 0o644); err != nil {
			return nil, fmt.Errorf("proxy ND: set %s: %w", kv[0], err)
		}
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("proxy ND: netlink: %w", err)
	}
	return &Proxy{ifi: ifi, log: log, active: map[netip.Addr]bool{}, h: h}, nil
}

// Set makes the proxied set exactly addrs: level-triggered, so a caller hands
// in the home addresses that have bindings now and need not track changes.
func (p *Proxy) Set(addrs []netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		want[a] = true
	}
	var errs []error
	for a := range want {
		if p.active[a] {
			continue
		}
		if err := p.h.NeighSet(p.neigh(a)); err != nil {
			errs = append(errs, fmt.Errorf("proxy ND: add %s: %w", a, err))
			continue
		}
		p.active[a] = true
		p.advertise(a)
		p.log.Info("proxy ND: defending home address", "hoa", a, "interface", p.ifi.Name)
	}
	for a := range p.active {
		if want[a] {
			continue
		}
		if err := p.h.NeighDel(p.neigh(a)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("proxy ND: remove %s: %w", a, err))
			continue
		}
		delete(p.active, a)
		p.log.Info("proxy ND: stopped defending home address", "hoa", a, "interface", p.ifi.Name)
	}
	return errors.Join(errs...)
}

// Adopt takes over the proxy entries on the home link that a previous run
// left (a killed home agent's) for addresses inside prefixes: they count
// as set, so that the next Set keeps those still wanted and removes the
// others. It returns the adopted addresses.
func (p *Proxy) Adopt(prefixes []netip.Prefix) ([]netip.Addr, error) {
	ns, err := p.h.NeighProxyList(p.ifi.Index, unix.AF_INET6)
	if err != nil {
		return nil, fmt.Errorf("proxy ND: list: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []netip.Addr
	for _, n := range ns {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.LinkIndex != p.ifi.Index || n.Flags&netlink.NTF_PROXY == 0 {
			continue
		}
		for _, pf := range prefixes {
			if pf.Contains(a) && !p.active[a] {
				p.active[a] = true
				out = append(out, a)
				break
			}
		}
	}
	return out, nil
}

// Proxied returns the home addresses defended now.
func (p *Proxy) Proxied() []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]netip.Addr, 0, len(p.active))
	for a := range p.active {
		out = append(out, a)
	}
	return out
}

// Close removes every proxy entry it added.
func (p *Proxy) Close() error {
	err := p.Set(nil)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	p.h.Close()
	return err
}

func (p *Proxy) neigh(a netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex: p.ifi.Index,
		Family:    unix.AF_INET6,
		Flags:     netlink.NTF_PROXY,
		IP:        net.IP(a.AsSlice()),
	}
}

// advertise multicasts an unsolicited NA for a (S clear, O set, target link
// layer address the home agent's), as RFC 6275 10.4.1 asks. Errors are logged:
// the proxy entry alone already answers solicitations.
func (p *Proxy) advertise(a netip.Addr) {
	if p.conn == nil {
		// Opened lazily: ndp.Listen needs the link-local address, which is
		// tentative for a while after the link comes up.
		c, _, err := ndp.Listen(p.ifi, ndp.LinkLocal)
		if err != nil {
			p.log.Debug("proxy ND: no unsolicited NA (link-local address not ready)", "interface", p.ifi.Name, "err", err)
			return
		}
		p.conn = c
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: a,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      p.ifi.HardwareAddr,
		}},
	}
	if err := p.conn.WriteTo(na, nil, netip.IPv6LinkLocalAllNodes()); err != nil {
		p.log.Warn("proxy ND: unsolicited NA", "hoa", a, "err", err)
	}
}

// Reach records that the mobile node owning home address a is on the home
// link at mac. A mobile node returning home de-registers from its home
// address but must not answer neighbour solicitations for it until the home
// agent has let it go (RFC 6275 11.5.4), so the home agent addresses its
// Binding Acknowledgement to the link-layer source of the Binding Update.
func (p *Proxy) Reach(a netip.Addr, mac net.HardwareAddr) error {
	n := &netlink.Neigh{
		LinkIndex:    p.ifi.Index,
		Family:       unix.AF_INET6,
		State:        netlink.NUD_REACHABLE,
		IP:           net.IP(a.AsSlice()),
		HardwareAddr: mac,
	}
	if err := p.h.NeighSet(n); err != nil {
		return fmt.Errorf("proxy ND: neighbour %s at %s: %w", a, mac, err)
	}
	return nil
}
