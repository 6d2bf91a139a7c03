// Package ebpf is the mobile node's eBPF backend: each BID's routing table
// has a default route through the BID's uplink whose LWT program pushes
// the outer header (pkg/bpftun), and a tc ingress program on every uplink
// removes it for packets from the home agent. No tunnel device, no
// ip6_tunnel module, and TCP super-packets stay whole through the tunnel.
package ebpf

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/bpftun"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

// Name is the backend's [dataplane] backend value.
const Name = "ebpf"

// Driver is the eBPF backend for package backends.
var Driver = dataplane.Driver{Name: Name, Probe: probe, New: New}

// New starts the eBPF backend in the calling thread's network namespace;
// cfg is resolved (dataplane.Config.Resolve).
func New(cfg dataplane.Config) (dataplane.Backend, error) {
	progs, adopted, err := loadPrograms(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", dataplane.ErrUnavailable, err)
	}
	ns, err := netns.Get()
	if err != nil {
		progs.Close()
		return nil, fmt.Errorf("dataplane: network namespace: %w", err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		progs.Close()
		ns.Close()
		return nil, fmt.Errorf("dataplane: netlink: %w", err)
	}
	b := newBackend(cfg, progs, h, ns)
	if len(cfg.Adopt) > 0 {
		if err := b.adopt(cfg.Adopt, adopted); err != nil {
			cfg.Logger.Warn("kept data plane not wholly adopted: the first update makes the rest again", "err", err)
		}
	}
	return b, nil
}

// probe loads the programs, one encapsulation instance included, and
// unloads them: the kernel takes them or this backend cannot run.
func probe() error {
	p, err := bpftun.Load()
	if err != nil {
		return fmt.Errorf("%w: %w", dataplane.ErrUnavailable, err)
	}
	defer p.Close()
	if _, err := p.Encap(0); err != nil {
		return fmt.Errorf("%w: %w", dataplane.ErrUnavailable, err)
	}
	return nil
}

// inNetns runs fn on a thread in ns: tcx attaches by interface index in
// the caller's namespace, and SetTunnels may come from any thread.
func inNetns(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No unlock: the thread, maybe left in ns, dies with the goroutine.
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("entering the backend's network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
