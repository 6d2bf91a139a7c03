package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// radvdConf returns radvd's configuration for one link. The Advertisement
// Interval option (RFC 6275 section 7.3) is always on: it lets mcoad detect
// movement, and it lets radvd use sub-second intervals. On the home link the
// HA also sets the Home Agent flag and option, and every prefix carries the
// router's full address (R bit), as RFC 6275 section 7.2 expects.
func radvdConf(iface string, prefix netip.Prefix, home bool, minI, maxI time.Duration) string {
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
	var b strings.Builder
	fmt.Fprintf(&b, "# written by mcoad's lab; radvd -C this file\n")
	fmt.Fprintf(&b, "interface %s {\n", iface)
	fmt.Fprintf(&b, "\tAdvSendAdvert on;\n")
	fmt.Fprintf(&b, "\tMinRtrAdvInterval %s;\n", secs(minI))
	fmt.Fprintf(&b, "\tMaxRtrAdvInterval %s;\n", secs(maxI))
	fmt.Fprintf(&b, "\tAdvIntervalOpt on;\n")
	if home {
		fmt.Fprintf(&b, "\tAdvHomeAgentFlag on;\n")
		fmt.Fprintf(&b, "\tAdvHomeAgentInfo on;\n")
	}
	fmt.Fprintf(&b, "\tprefix %s {\n", prefix.Masked())
	fmt.Fprintf(&b, "\t\tAdvOnLink on;\n")
	fmt.Fprintf(&b, "\t\tAdvAutonomous on;\n")
	fmt.Fprintf(&b, "\t\tAdvRouterAddr on;\n")
	fmt.Fprintf(&b, "\t};\n")
	fmt.Fprintf(&b, "};\n")
	return b.String()
}

// startRadvds starts radvd on each access router's MN-facing link and on
// the HA's home link.
func (l *Lab) startRadvds() ([]*Proc, error) {
	type link struct {
		node, iface string
		prefix      netip.Prefix
		home        bool
	}
	var links []link
	for _, a := range Accesses {
		links = append(links, link{a.Router, RouterDownlink, a.Prefix, false})
	}
	links = append(links, link{HA, HomeIface, HomePrefix, true})
	if l.cfg.Vehicle {
		// The mobile router advertises its mobile network, as radvd
		// does on a vehicle's passenger LAN.
		links = append(links, link{MN, Ingress, MobileNetPrefix, false})
	}
	var procs []*Proc
	for _, k := range links {
		conf := filepath.Join(l.Dir, "radvd-"+k.node+".conf")
		// radvd refuses a configuration others may write to.
		text := radvdConf(k.iface, k.prefix, k.home, l.cfg.MinRAInterval, l.cfg.MaxRAInterval)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		if err := os.Chmod(conf, 0o644); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		// -n: stay in the foreground so the lab owns the process; -p: never
		// the system's pid file.
		p, err := l.Start(k.node, "radvd", "-n", "-m", "stderr", "-C", conf,
			"-p", filepath.Join(l.Dir, "radvd-"+k.node+".pid"))
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// waitCoAs waits until each MN interface has a care-of address, failing
// early if a radvd dies.
func (l *Lab) waitCoAs(ctx context.Context, radvds []*Proc) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.WaitTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	have := map[string]netip.Addr{}
	for {
		for _, p := range radvds {
			if !p.Running() {
				return fmt.Errorf("lab: radvd in %s exited (%v): %s", p.Node, p.Err(), strings.TrimSpace(p.Tail(2000)))
			}
		}
		for _, a := range Accesses {
			if _, ok := have[a.Iface]; ok {
				continue
			}
			addr, ok, err := l.coa(ctx, a.Iface, a.Prefix)
			if err != nil {
				if ctx.Err() != nil {
					break // report the timeout below
				}
				return err
			}
			if ok {
				have[a.Iface] = addr
				l.cfg.Logger.Info("care-of address", "iface", a.Iface, "addr", addr)
			}
		}
		if len(have) == len(Accesses) {
			return nil
		}
		select {
		case <-ctx.Done():
			var missing []string
			for _, a := range Accesses {
				if _, ok := have[a.Iface]; !ok {
					missing = append(missing, a.Iface)
				}
			}
			err := fmt.Errorf("lab: no care-of address on %s: %w", strings.Join(missing, ", "), ctx.Err())
			for _, p := range radvds {
				err = errors.Join(err, fmt.Errorf("radvd in %s says: %s", p.Node, strings.TrimSpace(p.Tail(500))))
			}
			return err
		case <-tick.C:
		}
	}
}

// WaitHostAddr waits until the vehicle lab's Host has a usable SLAAC
// address in MobileNetPrefix and a default route (both from the mobile
// router's Router Advertisements).
func (l *Lab) WaitHostAddr(ctx context.Context) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.WaitTimeout)
	defer cancel()
	var addr netip.Addr
	_, err := Poll(ctx, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		addrs, err := l.Addrs(ctx, Host, HostIface)
		if err != nil {
			return false, err
		}
		addr = netip.Addr{}
		for _, a := range addrs {
			if a.Scope == "global" && a.Dynamic && !a.Tentative && !a.DADFailed && !a.Deprecated && MobileNetPrefix.Contains(a.Prefix.Addr()) {
				addr = a.Prefix.Addr()
			}
		}
		if !addr.IsValid() {
			return false, nil
		}
		out, err := l.Exec(ctx, Host, "ip", "-6", "route", "show", "default")
		return err == nil && strings.Contains(string(out), "via"), err
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("lab: no address in %s with a default route on the host: %w", MobileNetPrefix, err)
	}
	return addr, nil
}
