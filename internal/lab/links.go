package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// linkExists reports whether node has an interface named iface.
func (l *Lab) linkExists(ctx context.Context, node, iface string) bool {
	return l.ip(ctx, "-n", l.NS(node), "link", "show", "dev", iface) == nil
}

// PeerOf returns where the other end of an MN interface is: its access
// router's down0, or (after AttachHome) the home bridge port h<iface> in ha.
func (l *Lab) PeerOf(ctx context.Context, mnIface string) (node, iface string, err error) {
	a, err := AccessOf(mnIface)
	if err != nil {
		return "", "", err
	}
	if l.linkExists(ctx, HA, homePort(mnIface)) {
		return HA, homePort(mnIface), nil
	}
	if l.linkExists(ctx, a.Router, RouterDownlink) {
		return a.Router, RouterDownlink, nil
	}
	return "", "", fmt.Errorf("lab: the peer of %s is neither in %s nor in %s", mnIface, l.NS(a.Router), l.NS(HA))
}

// CutLink makes the MN interface lose carrier, as if its access network
// went away: the far end of the link (router or home bridge side) is set
// down. The MN's interface and addresses stay.
func (l *Lab) CutLink(mnIface string) error { return l.setPeer(mnIface, "down") }

// RestoreLink undoes CutLink.
func (l *Lab) RestoreLink(mnIface string) error { return l.setPeer(mnIface, "up") }

func (l *Lab) setPeer(mnIface, state string) error {
	l.moveMu.Lock()
	defer l.moveMu.Unlock()
	ctx := context.Background()
	node, iface, err := l.PeerOf(ctx, mnIface)
	if err != nil {
		return err
	}
	return l.ip(ctx, "-n", l.NS(node), "link", "set", iface, state)
}

// AttachHome plugs an MN interface into the home link, like moving its cable
// from the access router to the home network: the router's end of the veth
// moves into ha and becomes a port of the home bridge. The MN-side interface
// keeps its name, index and MAC and sees a carrier flap; its old SLAAC
// address stays until it expires or the MN removes it, as on a real host.
// Attaching an interface that is already home does nothing.
func (l *Lab) AttachHome(mnIface string) error {
	return l.moveLink(mnIface, true, "attach %s to the home link", func(a Access, port string) [][]string {
		return [][]string{
			// Moving a link takes it down; the rename happens in the same step.
			{"-n", l.NS(a.Router), "link", "set", RouterDownlink, "netns", l.NS(HA), "name", port},
			// A bridge port is no host: no addresses of its own.
			{"-n", l.NS(HA), "link", "set", port, "addrgenmode", "none"},
			{"-n", l.NS(HA), "link", "set", port, "master", HomeBridge},
			{"-n", l.NS(HA), "link", "set", port, "up"},
		}
	})
}

// DetachHome moves an MN interface from the home link back to its access
// router (the reverse of AttachHome). Detaching an interface that is not
// home does nothing.
func (l *Lab) DetachHome(mnIface string) error {
	return l.moveLink(mnIface, false, "detach %s from the home link", func(a Access, port string) [][]string {
		return [][]string{
			{"-n", l.NS(HA), "link", "set", port, "netns", l.NS(a.Router), "name", RouterDownlink},
			// Addresses do not survive a change of namespace.
			{"-n", l.NS(a.Router), "addr", "add", pfx(a.RouterAddr, 64), "dev", RouterDownlink, "nodad"},
			{"-n", l.NS(a.Router), "link", "set", RouterDownlink, "up"},
		}
	})
}

// moveLink moves the router's end of mnIface's access link to the home
// link (home) or back, with the ip(8) steps steps gives for the access
// and the home port's name; nothing when it is there already. what names
// the move in errors (%s: mnIface).
func (l *Lab) moveLink(mnIface string, home bool, what string, steps func(a Access, port string) [][]string) error {
	a, err := AccessOf(mnIface)
	if err != nil {
		return err
	}
	l.moveMu.Lock()
	defer l.moveMu.Unlock()
	ctx := context.Background()
	port := homePort(mnIface)
	if l.linkExists(ctx, HA, port) == home {
		return nil
	}
	for _, s := range steps(a, port) {
		if err := l.ip(ctx, s...); err != nil {
			return fmt.Errorf("lab: "+what+": %w", mnIface, err)
		}
	}
	return nil
}

// Addr is an IPv6 address of an interface, as the kernel reports it.
type Addr struct {
	Prefix     netip.Prefix `json:"prefix"`               // address and prefix length
	Scope      string       `json:"scope"`                // "global", "link", "host"
	Dynamic    bool         `json:"dynamic,omitempty"`    // has finite lifetimes (SLAAC)
	Tentative  bool         `json:"tentative,omitempty"`  // DAD still running
	Deprecated bool         `json:"deprecated,omitempty"` // preferred lifetime over
	DADFailed  bool         `json:"dadfailed,omitempty"`
}

type ipAddrInfo struct {
	Family     string `json:"family"`
	Local      string `json:"local"`
	PrefixLen  int    `json:"prefixlen"`
	Scope      string `json:"scope"`
	Dynamic    bool   `json:"dynamic"`
	Tentative  bool   `json:"tentative"`
	Deprecated bool   `json:"deprecated"`
	DADFailed  bool   `json:"dadfailed"`
}

type ipLink struct {
	IfName    string       `json:"ifname"`
	Flags     []string     `json:"flags"`
	OperState string       `json:"operstate"`
	Master    string       `json:"master"`
	AddrInfo  []ipAddrInfo `json:"addr_info"`
}

func (l *Lab) ipLinks(ctx context.Context, node string, args ...string) ([]ipLink, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	out, err := output(ctx, "", "ip", append([]string{"-n", l.NS(node), "-j", "addr", "show"}, args...)...)
	if err != nil {
		return nil, err
	}
	var links []ipLink
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("lab: parsing ip -j addr of %s: %w", node, err)
	}
	return links, nil
}

func toAddrs(infos []ipAddrInfo) []Addr {
	var out []Addr
	for _, ai := range infos {
		if ai.Family != "inet6" {
			continue
		}
		a, err := netip.ParseAddr(ai.Local)
		if err != nil {
			continue
		}
		out = append(out, Addr{
			Prefix:     netip.PrefixFrom(a, ai.PrefixLen),
			Scope:      ai.Scope,
			Dynamic:    ai.Dynamic,
			Tentative:  ai.Tentative,
			Deprecated: ai.Deprecated,
			DADFailed:  ai.DADFailed,
		})
	}
	return out
}

// Addrs returns the IPv6 addresses of an interface of a node.
func (l *Lab) Addrs(ctx context.Context, node, iface string) ([]Addr, error) {
	links, err := l.ipLinks(ctx, node, "dev", iface)
	if err != nil {
		return nil, err
	}
	var out []Addr
	for _, k := range links {
		out = append(out, toAddrs(k.AddrInfo)...)
	}
	return out, nil
}

// coa returns a usable SLAAC address of an MN interface inside prefix.
func (l *Lab) coa(ctx context.Context, mnIface string, prefix netip.Prefix) (netip.Addr, bool, error) {
	addrs, err := l.Addrs(ctx, MN, mnIface)
	if err != nil {
		return netip.Addr{}, false, err
	}
	for _, a := range addrs {
		if a.Scope == "global" && a.Dynamic && !a.Tentative && !a.DADFailed && !a.Deprecated &&
			prefix.Contains(a.Prefix.Addr()) {
			return a.Prefix.Addr(), true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// WaitCoA waits until the MN interface has a usable (non-tentative,
// non-deprecated) SLAAC address in the prefix of the link it is attached to
// now: its access router's, or the home prefix after AttachHome.
func (l *Lab) WaitCoA(ctx context.Context, mnIface string) (netip.Addr, error) {
	a, err := AccessOf(mnIface)
	if err != nil {
		return netip.Addr{}, err
	}
	node, _, err := l.PeerOf(ctx, mnIface)
	if err != nil {
		return netip.Addr{}, err
	}
	prefix := a.Prefix
	if node == HA {
		prefix = HomePrefix
	}
	return l.WaitAddrIn(ctx, mnIface, prefix)
}

// WaitAddrIn waits until the MN interface has a usable SLAAC address in
// prefix.
func (l *Lab) WaitAddrIn(ctx context.Context, mnIface string, prefix netip.Prefix) (netip.Addr, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		addr, ok, err := l.coa(ctx, mnIface, prefix)
		if ok {
			return addr, nil
		}
		if err != nil && ctx.Err() == nil {
			return netip.Addr{}, err
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, fmt.Errorf("lab: no address in %s on %s: %w", prefix, mnIface, ctx.Err())
		case <-tick.C:
		}
	}
}

// Ping sends echo requests from node to dst until one is answered (at most
// 5 tries, one second each, fewer if ctx ends first).
func (l *Lab) Ping(ctx context.Context, node string, dst netip.Addr) error {
	return l.PingFrom(ctx, node, "", dst)
}

// PingFrom is Ping with ping's -I: src is a source address or an interface
// name of node ("" for none).
func (l *Lab) PingFrom(ctx context.Context, node, src string, dst netip.Addr) error {
	if err := CheckTools("ping"); err != nil {
		return err
	}
	args := []string{"-6", "-n", "-c", "1", "-W", "1"}
	if src != "" {
		args = append(args, "-I", src)
	}
	args = append(args, dst.String())
	var err error
	for range 5 {
		if _, err = l.Exec(ctx, node, "ping", args...); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("lab: ping from %s (%s) to %s: %w", node, src, dst, err)
}

// LinkStatus is one interface of a node.
type LinkStatus struct {
	Name      string   `json:"name"`
	OperState string   `json:"operstate"`        // "UP", "DOWN", "LOWERLAYERDOWN", "UNKNOWN"...
	Flags     []string `json:"flags"`            // as ip(8) prints them: "UP", "LOWER_UP", "NO-CARRIER"...
	Master    string   `json:"master,omitempty"` // bridge, if a port
	Addrs     []Addr   `json:"addrs"`
}

// NoCarrier reports whether the interface is up but has no carrier.
func (s LinkStatus) NoCarrier() bool {
	for _, f := range s.Flags {
		if f == "NO-CARRIER" {
			return true
		}
	}
	return false
}

// NodeStatus is one node, its interfaces and the processes running in it.
type NodeStatus struct {
	Node  string       `json:"node"`
	NS    string       `json:"ns"`
	Links []LinkStatus `json:"links"`
	Procs []ProcInfo   `json:"procs"`
}

// ProcInfo is a process running in a node.
type ProcInfo struct {
	Pid  int    `json:"pid"`
	Comm string `json:"comm"`
}

// Status lists every node with its interfaces and IPv6 addresses. A node
// whose namespace is gone is listed without links.
func (l *Lab) Status(ctx context.Context) ([]NodeStatus, error) {
	var out []NodeStatus
	var errs []error
	for _, n := range allNodes {
		ns := NodeStatus{Node: n, NS: l.NS(n)}
		if n == Host && !nsExists(ns.NS) {
			continue // not a vehicle lab
		}
		if nsExists(ns.NS) {
			links, err := l.ipLinks(ctx, n)
			errs = append(errs, err)
			for _, k := range links {
				ns.Links = append(ns.Links, LinkStatus{
					Name: k.IfName, OperState: k.OperState, Flags: k.Flags, Master: k.Master,
					Addrs: toAddrs(k.AddrInfo),
				})
			}
			pids, err := pidsInNamespaces([]string{ns.NS})
			errs = append(errs, err)
			for _, pid := range pids {
				if c := comm(pid); c != "" {
					ns.Procs = append(ns.Procs, ProcInfo{pid, c})
				}
			}
		}
		out = append(out, ns)
	}
	return out, errors.Join(errs...)
}

// Link returns the status of one interface of a node.
func (l *Lab) Link(ctx context.Context, node, iface string) (LinkStatus, error) {
	links, err := l.ipLinks(ctx, node, "dev", iface)
	if err != nil {
		return LinkStatus{}, err
	}
	if len(links) != 1 {
		return LinkStatus{}, fmt.Errorf("lab: %s in %s: %d links", iface, node, len(links))
	}
	k := links[0]
	return LinkStatus{Name: k.IfName, OperState: k.OperState, Flags: k.Flags, Master: k.Master, Addrs: toAddrs(k.AddrInfo)}, nil
}

// DumpLogs writes the end of every log in the lab's directory to w (for
// tests to show on failure).
func (l *Lab) DumpLogs(w io.Writer) {
	files, _ := filepath.Glob(filepath.Join(l.Dir, "*.log"))
	sort.Strings(files)
	for _, f := range files {
		fmt.Fprintf(w, "==> %s <==\n%s\n", f, strings.TrimRight(tailFile(f, 16<<10), "\n"))
	}
	if len(files) == 0 {
		if _, err := os.Stat(l.Dir); err != nil {
			fmt.Fprintf(w, "lab: no logs (%v)\n", err)
		}
	}
}

// ProxiedAddrs returns the addresses the ha node answers neighbour
// solicitations for on its home link (`ip -6 neigh show proxy`).
func (l *Lab) ProxiedAddrs(ctx context.Context) ([]netip.Addr, error) {
	out, err := l.Exec(ctx, HA, "ip", "-6", "neigh", "show", "proxy", "dev", HomeIface)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if a, err := netip.ParseAddr(f[0]); err == nil {
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

// CoAs returns the usable SLAAC address of each of the MN's access
// interfaces in its access router's prefix (interfaces without one are
// left out).
func (l *Lab) CoAs(ctx context.Context) (map[string]netip.Addr, error) {
	out := map[string]netip.Addr{}
	var errs []error
	for _, a := range Accesses {
		addr, ok, err := l.coa(ctx, a.Iface, a.Prefix)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			out[a.Iface] = addr
		}
	}
	return out, errors.Join(errs...)
}

// LeaveHome moves an MN interface from the home link back to its access
// router the way a host's network manager sees it: the carrier goes, the
// addresses and routes the home link gave it are flushed (Linux itself
// would keep the home-prefix SLAAC address for its whole valid lifetime),
// and the interface comes up on the foreign link.
func (l *Lab) LeaveHome(ctx context.Context, mnIface string) error {
	if err := l.CutLink(mnIface); err != nil {
		return err
	}
	p := HomePrefix.String()
	if err := l.ip(ctx, "-n", l.NS(MN), "-6", "addr", "flush", "dev", mnIface, "to", p); err != nil {
		return fmt.Errorf("lab: leave home: %w", err)
	}
	if err := l.ip(ctx, "-n", l.NS(MN), "-6", "route", "flush", "dev", mnIface, "root", p); err != nil {
		return fmt.Errorf("lab: leave home: %w", err)
	}
	// The home agent's default route: it would outlive the move by up to
	// radvd's AdvDefaultLifetime (3 * MaxRtrAdvInterval).
	if err := l.ip(ctx, "-n", l.NS(MN), "-6", "route", "flush", "dev", mnIface, "proto", "ra"); err != nil {
		return fmt.Errorf("lab: leave home: %w", err)
	}
	return l.DetachHome(mnIface)
}
