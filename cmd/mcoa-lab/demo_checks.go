package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// What the demos check, through the daemons' control sockets and
// metrics.

// checkCache checks that the HA's cache holds exactly the bindings of
// want, each with its interface's BID, care-of address and priority.
func (d *demo) checkCache(ctx context.Context, want ...string) error {
	return d.cacheHolds(ctx, "HA", d.ha, true, want...)
}

// cnCacheIs checks that the CN holds exactly the bindings of want for the
// home address, each with its interface's BID and care-of address.
func (d *demo) cnCacheIs(ctx context.Context, want ...string) error {
	return d.cacheHolds(ctx, "CN", d.cn, false, want...)
}

// cacheHolds checks that the cache of dm (who: "HA" or "CN") holds exactly
// the bindings of want for the home address, each with its interface's
// BID and care-of address: home registrations with the interface's
// priority when home, correspondent bindings otherwise.
func (d *demo) cacheHolds(ctx context.Context, who string, dm *lab.Daemon, home bool, want ...string) error {
	c, err := dm.Client.Cache(ctx)
	if err != nil {
		return err
	}
	if len(c) != len(want) {
		return fmt.Errorf("%s cache has %d bindings, want %d (%s)", who, len(c), len(want), strings.Join(want, ", "))
	}
	for _, n := range want {
		i := slices.IndexFunc(c, func(x control.CacheEntry) bool { return x.BID == d.bids[n] })
		if i < 0 {
			return fmt.Errorf("%s cache has no binding for %s (BID %d)", who, n, d.bids[n])
		}
		x := c[i]
		if x.HoA != lab.HoA || x.CoA != d.coas[n] || x.HomeRegistration != home || (home && x.Priority != demoPriority[n]) {
			return fmt.Errorf("%s binding BID %d is %s -> %s priority %d (home registration %v); want %s -> %s priority %d (home registration %v)",
				who, x.BID, x.HoA, x.CoA, x.Priority, x.HomeRegistration, lab.HoA, d.coas[n], demoPriority[n], home)
		}
	}
	return nil
}

func (d *demo) proxied(ctx context.Context) (bool, error) {
	as, err := d.lab.ProxiedAddrs(ctx)
	return slices.Contains(as, lab.HoA), err
}

// mnRegistered checks that the MN lists exactly n bindings with the HA,
// all registered.
func (d *demo) mnRegistered(ctx context.Context, n int) error {
	return d.mnRegisteredAs(ctx, control.RoleHA, n)
}

// mnRegisteredAs checks that the MN lists exactly n bindings of role
// (control.RoleHA or control.RoleCN), all registered.
func (d *demo) mnRegisteredAs(ctx context.Context, role string, n int) error {
	bs, err := d.mn.Client.Bindings(ctx)
	if err != nil {
		return err
	}
	all, reg := 0, 0
	for _, b := range bs {
		if b.Role != role {
			continue
		}
		all++
		if b.State == "registered" && b.LastStatus == 0 {
			reg++
		}
	}
	if reg != n || all != n {
		return fmt.Errorf("MN has %d %s bindings, %d registered; want %d registered", all, role, reg, n)
	}
	return nil
}

// tunnelCounts is the MN's count of packets sent (tx) or received (rx)
// through each interface's tunnel (mcoactl metrics).
func (d *demo) tunnelCounts(ctx context.Context, dir string) (map[string]float64, error) {
	m, err := d.mn.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, n := range demoIfaces {
		out[n] = m[fmt.Sprintf(`mcoad_tunnel_%s_packets_total{bid="%d"}`, dir, d.bids[n])]
	}
	return out, nil
}

// ridesOn waits until want's tunnel carried at least n more packets in
// direction dir than at base while every other one carried fewer than a
// tenth of that; it returns the counts since base.
func (d *demo) ridesOn(ctx context.Context, what, dir, want string, n float64) (map[string]float64, error) {
	base, err := d.tunnelCounts(ctx, dir)
	if err != nil {
		return nil, err
	}
	delta := map[string]float64{}
	_, err = within(ctx, 10*time.Second, what, func(ctx context.Context) error {
		now, err := d.tunnelCounts(ctx, dir)
		if err != nil {
			return err
		}
		for _, i := range demoIfaces {
			delta[i] = now[i] - base[i]
		}
		if delta[want] < n {
			return fmt.Errorf("%s's tunnel carried %v packets, want %v (per interface: %v)", want, delta[want], n, delta)
		}
		for _, o := range demoIfaces {
			if o != want && delta[o] > n/10 {
				return fmt.Errorf("%s's tunnel carried %v packets, want few (per interface: %v)", o, delta[o], delta)
			}
		}
		return nil
	})
	return delta, err
}

func fmtCounts(c map[string]float64) string {
	var parts []string
	for _, n := range demoIfaces {
		parts = append(parts, fmt.Sprintf("%s %4.0f", n, c[n]))
	}
	return strings.Join(parts, ", ")
}
