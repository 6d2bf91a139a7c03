package ebpf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/bpftun"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/tunio"
)

var _ dataplane.Keeper = (*backend)(nil)

// A restart keeps the tunnels carrying packets: each BID's route holds its
// encap program, which holds the maps; Keep pins the maps and the uplinks'
// tc links under cfg.BPFDir and makes the home device persistent, and the
// next process's New (cfg.Adopt) takes them over before anything changes.

// ingressPin names the pin of uplink ifindex's tc link.
func ingressPin(ifindex int) string { return "ingress-" + strconv.Itoa(ifindex) }

// Keep stops the backend for a restart without removing its tunnels.
func (b *backend) Keep() ([]dataplane.Tunnel, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, dataplane.ErrClosed
	}
	if len(b.tunnels) == 0 || b.home == nil {
		return nil, b.closeLocked()
	}
	b.closed = true
	dir := b.cfg.BPFDir
	err := mountBPF(dir)
	if err == nil {
		err = b.progs.Pin(dir)
	}
	for ifi, l := range b.uplinks {
		if err == nil {
			err = bpftun.PinLink(l, dir, ingressPin(ifi))
		}
	}
	if err == nil {
		err = b.home.SetPersist(true)
	}
	if err != nil {
		// Nothing half-kept: remove it all as Close does.
		os.RemoveAll(dir)
		b.closed = false
		return nil, errors.Join(fmt.Errorf("keeping the eBPF data plane: %w", err), b.closeLocked())
	}
	kept := make([]dataplane.Tunnel, 0, len(b.tunnels))
	for _, t := range b.tunnels {
		kept = append(kept, t)
	}
	var errs []error
	for _, l := range b.uplinks {
		errs = append(errs, l.Close()) // pinned: it stays attached
	}
	errs = append(errs, b.home.Close(), b.progs.Close())
	b.h.Close()
	b.ns.Close()
	b.log.Info("data plane kept for the restart", "tunnels", len(kept), "pins", dir)
	return kept, errors.Join(errs...)
}

// adopt takes over what a previous process kept (cfg.Adopt): the uplinks'
// links and the home device, and, when New loaded the programs over the
// pinned maps (maps), what they hold. What cannot be adopted is made again
// by the first SetTunnels.
func (b *backend) adopt(kept []dataplane.Tunnel, maps bool) error {
	var errs []error
	for _, t := range kept {
		b.tunnels[t.BID] = t
		if maps {
			b.peers[t.HA] = true
		}
		if b.uplinks[t.Ifindex] != nil {
			continue
		}
		err := inNetns(b.ns, func() error {
			l, err := bpftun.AdoptLink(b.cfg.BPFDir, ingressPin(t.Ifindex), b.progs.Decap())
			if err == nil {
				b.uplinks[t.Ifindex] = l
			}
			return err
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	err := inNetns(b.ns, func() (err error) {
		b.home, err = tunio.OpenConfiguredTUN(b.h, b.cfg.HomeDevice, dataplane.MinMTU, false)
		return err
	})
	if err == nil {
		b.hoa = kept[0].HoA
		err = b.home.SetPersist(false)
	}
	return errors.Join(append(errs, err)...)
}

// loadPrograms loads the programs over the maps a previous process kept
// (adopted), else afresh.
func loadPrograms(cfg dataplane.Config) (p *bpftun.Programs, adopted bool, err error) {
	if len(cfg.Adopt) > 0 {
		p, err := bpftun.LoadPinned(cfg.BPFDir)
		if err == nil {
			return p, true, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			cfg.Logger.Warn("kept eBPF maps not adopted: starting afresh", "err", err)
		}
	}
	p, err = bpftun.Load()
	return p, false, err
}

// mountBPF makes sure dir is on a bpffs: /sys/fs/bpf is mounted when it is
// not (a system without systemd, a container).
func mountBPF(dir string) error {
	root := "/sys/fs/bpf"
	if !strings.HasPrefix(dir, root+"/") {
		return os.MkdirAll(dir, 0o700) // the caller's own bpffs
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return os.MkdirAll(dir, 0o700)
	}
	if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mounting a bpffs at %s: %w", root, err)
	}
	return os.MkdirAll(dir, 0o700)
}
