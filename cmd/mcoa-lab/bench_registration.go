package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/proto"
)

// The registration sections: how long a registration takes after a new
// care-of address, and bulk against individual registration.

func (b *bench) regLatency(ctx context.Context) (stats, error) {
	b.logf("registration latency, %d new care-of addresses", b.o.cycles)
	h, err := b.nlHandle(lab.MN)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		return nil, err
	}
	var added []*netlink.Addr
	defer func() {
		for _, a := range added {
			h.AddrDel(link, a)
		}
	}()
	var s stats
	for i := range b.o.cycles {
		addr := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: byte((0x1000 + i) >> 8), 15: byte(0x1000 + i)})
		a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
		t0 := time.Now()
		if err := h.AddrAdd(link, a); err != nil {
			return nil, fmt.Errorf("add %s: %w", addr, err)
		}
		added = append(added, a)
		ev, err := b.mnEv.wait(ctx, 10*time.Second, "registration of "+addr.String(), func(ev control.Event) bool {
			return ev.Kind == control.EventBinding && ev.Binding != nil && !ev.Removed &&
				ev.Binding.CoA == addr && ev.Binding.State == "registered"
		})
		if err != nil {
			return nil, err
		}
		s = append(s, ev.Time.Sub(t0))
		if err := sleepCtx(ctx, 450*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// failover cuts eth0's carrier (its access router's end goes down) and
// measures until the HA's cache loses the binding, then restores it a
// second later and measures until mcoad has the BA that registers it again.

type regFigure struct {
	times   stats
	bytes   int // per registration
	packets int // per registration
}

// bulkVsIndividual registers 3 and 8 bindings, in bulk and individually,
// runs times each, capturing what goes over the HA's core link.
func (b *bench) bulkVsIndividual(ctx context.Context) (map[string]regFigure, error) {
	out := map[string]regFigure{}
	for _, n := range []int{3, 8} {
		if n == 8 {
			// Five more care-of addresses: 3 on eth0, 3 on wlan0, 2 on wwan0.
			if err := b.addCoAs(map[string][]int{"eth0": {0x21, 0x22}, "wlan0": {0x21, 0x22}, "wwan0": {0x21}}); err != nil {
				return nil, err
			}
		}
		for _, mode := range []string{"bulk", "individual"} {
			key := fmt.Sprintf("%s%d", mode, n)
			b.logf("%s registration of %d care-of addresses, %d runs", mode, n, b.o.runs)
			cfg := lab.MNConfig{Registration: mode, StateDir: filepath.Join(b.lab.Dir, "state-"+key)}
			if n == 8 {
				cfg.BIDMode = "coa"
			}
			if err := b.startMN(ctx, cfg, n); err != nil {
				return nil, err
			}
			f, err := b.registerRuns(ctx, n)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			out[key] = f
		}
	}
	return out, nil
}

// addCoAs gives each MN interface more addresses in its access prefix,
// with the interface identifiers hosts.
func (b *bench) addCoAs(hosts map[string][]int) error {
	h, err := b.nlHandle(lab.MN)
	if err != nil {
		return err
	}
	defer h.Close()
	for ifn, ids := range hosts {
		link, err := h.LinkByName(ifn)
		if err != nil {
			return err
		}
		acc, _ := lab.AccessOf(ifn)
		for _, id := range ids {
			a := acc.Prefix.Addr().As16()
			a[15] = byte(id)
			na := &netlink.Addr{IPNet: &net.IPNet{IP: a[:], Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
			if err := h.AddrAdd(link, na); err != nil {
				return err
			}
		}
	}
	return nil
}

// registerRuns has mcoad re-register its n bindings b.o.runs times,
// capturing the BUs and BAs on the HA's core link.
func (b *bench) registerRuns(ctx context.Context, n int) (regFigure, error) {
	var f regFigure
	bs, err := b.mn.Client.Bindings(ctx)
	if err != nil {
		return f, err
	}
	bids := map[uint16]bool{}
	for _, x := range bs {
		bids[x.BID] = true
	}
	// Quiet first: MAX_UPDATE_RATE counts the last second's BUs.
	if err := sleepCtx(ctx, 1100*time.Millisecond); err != nil {
		return f, err
	}
	file := filepath.Join(b.lab.Dir, fmt.Sprintf("bench-%d-%d.pcapng", n, time.Now().UnixNano()))
	capt, err := b.lab.StartCapture(ctx, lab.HA, lab.Uplink, lab.MHFilter, file)
	if err != nil {
		return f, err
	}
	for range b.o.runs {
		took, err := b.reregister(ctx, bids)
		if err != nil {
			capt.Stop()
			return f, err
		}
		f.times = append(f.times, took)
		if err := sleepCtx(ctx, 1100*time.Millisecond); err != nil {
			capt.Stop()
			return f, err
		}
	}
	capt.Stop()
	total, pkts, err := buBABytes(ctx, file)
	if err != nil {
		return f, err
	}
	f.bytes = total / b.o.runs
	f.packets = pkts / b.o.runs
	return f, nil
}

// reregister asks mcoad to register again and returns how long until each
// of bids was registered.
func (b *bench) reregister(ctx context.Context, bids map[uint16]bool) (time.Duration, error) {
	t0 := time.Now()
	if err := b.mn.Client.Register(ctx); err != nil {
		return 0, err
	}
	seen := map[uint16]bool{}
	var last time.Time
	for len(seen) < len(bids) {
		ev, err := b.mnEv.wait(ctx, 15*time.Second, "re-registration", func(ev control.Event) bool {
			return ev.Kind == control.EventBinding && ev.Binding != nil && !ev.Removed &&
				ev.Binding.State == "registered" && ev.Time.After(t0) && bids[ev.Binding.BID]
		})
		if err != nil {
			return 0, err
		}
		seen[ev.Binding.BID] = true
		last = ev.Time
	}
	return last.Sub(t0), nil
}

// buBABytes adds up the frames of the BUs and BAs in the capture file.
func buBABytes(ctx context.Context, file string) (total, pkts int, err error) {
	out, err := exec.CommandContext(ctx, "tshark", "-n", "-r", file, "-Y", "mipv6", "-T", "fields", "-e", "frame.len", "-e", "mip6.mhtype").Output()
	if err != nil {
		return 0, 0, fmt.Errorf("tshark -r: %w", err)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		fs := strings.Fields(string(line))
		if len(fs) != 2 || (fs[1] != strconv.Itoa(int(proto.TypeBU)) && fs[1] != strconv.Itoa(int(proto.TypeBA))) {
			continue
		}
		l, _ := strconv.Atoi(fs[0])
		total += l
		pkts++
	}
	if pkts == 0 {
		return 0, 0, errors.New("no BU or BA captured")
	}
	return total, pkts, nil
}
