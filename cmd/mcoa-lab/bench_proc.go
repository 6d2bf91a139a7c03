package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
)

// The idle section: what the daemons cost with nothing to do, read from
// /proc.

type idleFigure struct {
	name  string
	rssKB int64
	cpu   time.Duration
}

// procCPU returns a process's user+system CPU time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count from after ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	const clkTck = 100                       // USER_HZ on every Linux ABI
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(v, &kb)
			return kb, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

func (b *bench) idle(ctx context.Context) ([]idleFigure, error) {
	b.logf("idle run of %v", b.o.idle)
	ds := []*lab.Daemon{b.mn, b.ha}
	before := make([]time.Duration, len(ds))
	for i, d := range ds {
		c, err := procCPU(d.Proc().Pid)
		if err != nil {
			return nil, err
		}
		before[i] = c
	}
	if err := sleepCtx(ctx, b.o.idle); err != nil {
		return nil, err
	}
	var out []idleFigure
	for i, d := range ds {
		pid := d.Proc().Pid
		c, err := procCPU(pid)
		if err != nil {
			return nil, err
		}
		rss, err := procRSS(pid)
		if err != nil {
			return nil, err
		}
		out = append(out, idleFigure{name: filepath.Base(d.Bin), rssKB: rss, cpu: c - before[i]})
	}
	return out, nil
}

// regLatency adds a fresh address to eth0 each cycle: with one BID per
// interface mcoad moves eth0's binding to the newest address, and the
// sample is the time from the kernel's address event to the BA that
// registers it. Cycles are spaced so that MAX_UPDATE_RATE never delays a

func cpuModel() string {
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					return strings.TrimSpace(v)
				}
			}
		}
	}
	return "an unknown CPU"
}

// vehicleFailover replaces the lab with the vehicle lab (a host behind
// mcoad as NEMO mobile router) and measures, as failover does for the
// home address, the gap in a 1 ms probe stream from the CN to the host
