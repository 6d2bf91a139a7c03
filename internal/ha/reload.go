package ha

import (
	"context"
	"fmt"
	"strings"

	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
)

// Reload reads the configuration file again (Deps.ConfigPath) and
// applies it (Apply): a file with errors is refused, wrapping
// control.ErrInvalid, and the running configuration stays. The log level
// changes at once.
func (a *Agent) Reload(ctx context.Context) error {
	next, err := config.LoadHA(a.deps.ConfigPath)
	if err != nil {
		return fmt.Errorf("%w: %v", control.ErrInvalid, err)
	}
	var prev *config.HA
	if err := a.do(ctx, func() { prev = a.cfg }); err != nil {
		return err
	}
	restart, err := a.Apply(ctx, next)
	if err != nil {
		return err
	}
	warnUnauthenticated(a.log, prev, next)
	if a.deps.Level != nil {
		a.deps.Level.Set(next.Log.Level)
	}
	if len(restart) > 0 {
		a.log.Warn("reload: these change only on restart", "sections", restart)
	}
	changed := config.DiffHA(prev, next)
	a.log.Info("configuration reloaded", "changed", changed)
	a.deps.Events.Publish(control.Event{Time: a.clk.Now(), Kind: control.EventReload, Message: "reloaded: " + strings.Join(changed, ", ")})
	return nil
}

// Apply applies a new configuration to the running agent: what BUs are
// accepted from now on (served prefixes, bulk registration, lifetime caps,
// MN-HA keys) changes at once and the caches keep their bindings. The
// roles, the address, the home link, the wire profile, the correspondent's
// addresses, the data plane and the control socket change only on
// restart: the running values stay and the changed sections are returned.
// The log level is the caller's.
func (a *Agent) Apply(ctx context.Context, cfg *config.HA) (restart []string, err error) {
	err = a.do(ctx, func() {
		old := a.cfg
		next := *cfg
		for _, section := range config.DiffHA(old, cfg) {
			switch section {
			case "home_agent":
				h, oh := cfg.HomeAgent, old.HomeAgent
				switch {
				case cfg.HomeAgentRole() != old.HomeAgentRole():
					restart = append(restart, "home_agent (the role)")
					h = oh
				case h.Address != oh.Address || h.Interface != oh.Interface || h.Profile != oh.Profile || h.BIDOptionType != oh.BIDOptionType:
					restart = append(restart, "home_agent (address, interface, profile)")
					h.Address, h.Interface, h.Profile, h.BIDOptionType = oh.Address, oh.Interface, oh.Profile, oh.BIDOptionType
				}
				if h.StateDir != oh.StateDir {
					restart = append(restart, "home_agent.state_dir")
					h.StateDir = oh.StateDir
				}
				next.HomeAgent = h
			case "correspondent":
				// The lifetime cap applies at once; the profile follows
				// [home_agent]'s, reported there.
				c, oc := cfg.Correspondent, old.Correspondent
				c.MaxLifetime = oc.MaxLifetime
				if old.HomeAgentRole() {
					c.Profile, c.BIDOptionType = oc.Profile, oc.BIDOptionType
				}
				if !c.Equal(oc) {
					restart = append(restart, section)
					c = oc
				}
				c.MaxLifetime = cfg.Correspondent.MaxLifetime
				next.Correspondent = c
			case "dataplane":
				restart = append(restart, section)
				next.Dataplane = old.Dataplane
			case "control":
				restart = append(restart, section)
				next.Control = old.Control
			}
		}
		a.cfg = &next
		a.cache.Reconfigure(cacheConfig(&next, a.prof))
		if a.cn != nil {
			a.cn.cache.Reconfigure(cnCacheConfig(&next, a.prof))
		}
	})
	return restart, err
}
