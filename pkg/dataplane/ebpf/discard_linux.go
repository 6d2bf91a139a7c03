package ebpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Discard removes, in the calling thread's network namespace, what an eBPF
// backend that did not close left: a stop that kept the data plane for a
// restart no process adopts, or a crash. That is the pins under bpfDir
// (their tc links then leave the uplinks; only on a bpffs, so that a
// misconfigured directory is never emptied), and the encap routes of the
// BIDs' tables (TableBase+1 .. TableBase+65535), which hold the programs
// and their maps. The home device, a TUN device, is the caller's.
func Discard(bpfDir string, tableBase uint32) error {
	var errs []error
	var st unix.Statfs_t
	if err := unix.Statfs(bpfDir, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		if err := os.RemoveAll(bpfDir); err != nil {
			errs = append(errs, fmt.Errorf("dataplane: removing the pins: %w", err))
		}
	}
	routes, err := netlink.RouteListFiltered(unix.AF_INET6, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("dataplane: list routes: %w", err))...)
	}
	for _, r := range routes {
		ours := r.Table > int(tableBase) && int64(r.Table) <= int64(tableBase)+0xffff &&
			r.Encap != nil && r.Encap.Type() == nl.LWTUNNEL_ENCAP_BPF
		if !ours {
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("dataplane: delete route table %d: %w", r.Table, err))
		}
	}
	return errors.Join(errs...)
}
