package main

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/vishvananda/netlink"

	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/dataplane/ebpf"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/policy"
)

// cleanupKernel removes what a mcoad killed without stopping leaves in the
// kernel: its nftables tables (the one that silences the kernel's ICMP
// errors about Mobility Header packets, and the flow policy's), its ip
// rules (tagged with config.RuleProtocol), and the kernel backend's tunnel
// and home devices with the routes of the BIDs' tables (TUN devices go with
// the process, except those a stop kept for the next process: persistent,
// they are deleted here too, unless main skips the cleanup once after a
// restart), and the eBPF backend's pins under bpf_dir and encap routes in
// the BIDs' tables (ebpf.Discard). systemd runs it as ExecStopPost. Nothing to remove is success.
func cleanupKernel(dp config.Dataplane) error {
	var errs []error
	if err := policy.Cleanup(&policy.Config{Mark: dp.Mark, Mask: dp.Mask, TableBase: dp.TableBase}); err != nil {
		errs = append(errs, err)
	}
	if err := mhsock.DeleteTable(mhsock.DefaultNFTable); err != nil {
		errs = append(errs, err)
	}
	if err := deleteDevices(); err != nil {
		errs = append(errs, err)
	}
	if err := ebpf.Discard(dp.BPFDir, dp.TableBase); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tunnelName matches dataplane.DeviceName.
var tunnelName = regexp.MustCompile("^" + config.TunnelDevicePrefix + "[0-9]+$")

// deleteDevices removes the data plane's devices, recognised by name and
// kind, so that nothing else is ever touched.
func deleteDevices() error {
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	var errs []error
	for _, l := range links {
		name, kind := l.Attrs().Name, l.Type()
		ours := (tunnelName.MatchString(name) && (kind == "ip6tnl" || kind == "tuntap")) ||
			(name == config.DefaultHomeDevice && (kind == "dummy" || kind == "tuntap"))
		if !ours {
			continue
		}
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete %s %s: %w", kind, name, err))
		}
	}
	return errors.Join(errs...)
}
