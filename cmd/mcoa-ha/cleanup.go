package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/internal/ha"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/mhsock"
)

// cleanupKernel removes what a mcoa-ha killed without stopping leaves in
// the kernel (systemd runs it as ExecStopPost): its Mobility Header
// nftables table, the correspondent's ip rules, the data planes' TUN
// devices should they outlive their process, and the proxy neighbour
// entries on the home link for served addresses, which would otherwise
// keep answering for home addresses nobody forwards. The binding cache in
// home_agent.state_dir stays: the next start restores the bindings and
// puts their proxy entries, routes and tunnels back. Nothing to remove is
// success.
func cleanupKernel(cfg *config.HA) error {
	var errs []error
	if err := mhsock.DeleteTable(ha.NFTable); err != nil {
		errs = append(errs, err)
	}
	if cfg != nil && cfg.Correspondent.Enabled {
		if err := deleteCNRules(config.DefaultCNRulePriority); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteDevices(config.DefaultHADevice, config.DefaultCNDevice); err != nil {
		errs = append(errs, err)
	}
	if cfg != nil && cfg.HomeAgentRole() && cfg.HomeAgent.Interface != "" {
		if err := deleteProxies(cfg.HomeAgent.Interface, cfg.HomeAgent.Serve); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteCNRules removes the correspondent plane's three rules (pr, pr+1,
// pr+2), as the plane itself does at start.
func deleteCNRules(pr int) error {
	rules, err := netlink.RuleList(unix.AF_INET6)
	if err != nil {
		return fmt.Errorf("ip rules: %w", err)
	}
	var errs []error
	for i := range rules {
		if r := &rules[i]; r.Priority >= pr && r.Priority <= pr+2 {
			if err := netlink.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("ip rule %v: delete: %w", r, err))
			}
		}
	}
	return errors.Join(errs...)
}

// deleteDevices removes TUN devices with these names (and nothing of
// another kind).
func deleteDevices(names ...string) error {
	var errs []error
	for _, n := range names {
		l, err := netlink.LinkByName(n)
		if err != nil {
			continue // gone with its process, as it should be
		}
		if l.Type() != "tuntap" {
			continue
		}
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// deleteProxies removes the proxy neighbour entries on ifname for
// addresses inside the served prefixes (ProxyND.Adopt takes the same).
func deleteProxies(ifname string, serve []netip.Prefix) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil // no home link, no entries
	}
	ns, err := netlink.NeighProxyList(ifi.Index, unix.AF_INET6)
	if err != nil {
		return fmt.Errorf("proxy entries on %s: %w", ifname, err)
	}
	var errs []error
	for i := range ns {
		n := &ns[i]
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.LinkIndex != ifi.Index || n.Flags&netlink.NTF_PROXY == 0 {
			continue
		}
		for _, p := range serve {
			if p.Contains(a.Unmap()) {
				if err := netlink.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("proxy entry %s on %s: %w", a, ifname, err))
				}
				break
			}
		}
	}
	return errors.Join(errs...)
}
