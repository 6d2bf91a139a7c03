package policy

import (
	"context"
	"fmt"

	"github.com/mcoad/mcoad/pkg/netmon"
	"github.com/vishvananda/netlink"
)

// Routing is the part of a *netmon.Monitor (made with Config.Routes) that
// Watch reads; tests fake it.
type Routing interface {
	Current() *netmon.State
	Changes(of netmon.Kind) (c <-chan struct{}, stop func())
}

// Watch calls kick whenever an IPv6 ip rule, or a route of a BID's table
// (TableBase+1 and up), disappears from the monitor's State, until ctx
// ends: someone may be removing what mcoad installed (systemd-networkd
// does), and the next Apply puts it back. kick must not block. mcoad's own
// deletions kick too; an Apply that finds nothing to do is cheap.
func Watch(ctx context.Context, cfg *Config, r Routing, kick func()) error {
	c, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	changes, stop := r.Changes(netmon.Routes)
	defer stop()
	lo, hi := c.TableBase+1, c.TableBase+0xffff
	prev := routingKeys(r.Current(), lo, hi)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		}
		cur := routingKeys(r.Current(), lo, hi)
		for k := range prev {
			if !cur[k] {
				kick()
				break
			}
		}
		prev = cur
	}
}

// routingKeys names the rules, and the routes of tables lo..hi, in s.
func routingKeys(s *netmon.State, lo, hi uint32) map[string]bool {
	keys := make(map[string]bool, len(s.Rules)+len(s.Routes))
	for _, r := range s.Rules {
		keys[ruleKey(&r)] = true
	}
	for _, r := range s.Routes {
		if t := uint32(r.Table); t >= lo && t <= hi {
			keys[fmt.Sprintf("route %d %v %v %v %d %d", r.Table, r.Dst, r.Src, r.Gw, r.LinkIndex, r.Priority)] = true
		}
	}
	return keys
}

func ruleKey(r *netlink.Rule) string {
	var mask uint32
	if r.Mask != nil {
		mask = *r.Mask
	}
	return fmt.Sprintf("rule %d %d %d %#x/%#x %v %v %q %q %v %d", r.Priority, r.Table, r.Type, r.Mark, mask,
		r.Src, r.Dst, r.IifName, r.OifName, r.Invert, r.Goto)
}
