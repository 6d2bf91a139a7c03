package mn

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// sysctls reads and writes IPv6 settings by key relative to
// /proc/sys/net/ipv6/conf, e.g. "all/forwarding"; tests use a fake.
type sysctls interface {
	get(key string) (string, error)
	set(key, val string) error
}

// procSysctls are the namespace's own, in /proc/sys.
type procSysctls struct{}

const confDir = "/proc/sys/net/ipv6/conf"

func (procSysctls) get(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join(confDir, key))
	return strings.TrimSpace(string(b)), err
}

func (procSysctls) set(key, val string) error {
	return os.WriteFile(filepath.Join(confDir, key), []byte(val), 0)
}

// forwarding switches IPv6 forwarding on for a mobile router and back off
// on stop. Linux decides forwarding for the whole namespace
// (all/forwarding), and switching it on makes every interface a router:
// RAs are no longer accepted with accept_ra=1, and the default routes
// learned from them are purged at once. So the uplinks (the care-of
// interfaces) get accept_ra=2 first, then forwarding goes on, then their
// own forwarding flag goes back to 0 (host behaviour: solicitations, RAs).
// That forwarding only joins the ingress interfaces and the tunnels is
// pkg/policy's forward chain. Every value changed is remembered once and
// put back by restore. One goroutine owns it (the data path's).
type forwarding struct {
	sys     sysctls
	log     *slog.Logger
	ingress []string

	on    bool
	saved []savedSysctl // in the order first changed
	keys  map[string]bool
}

// savedSysctl is a value as it was before mcoad changed it. inherited:
// captured after mcoad switched all/forwarding on, so the value is the one
// that switch gave the interface, and restoring all/forwarding puts the
// interface back by itself.
type savedSysctl struct {
	key, val  string
	inherited bool
}

func newForwarding(sys sysctls, ingress []string, log *slog.Logger) *forwarding {
	return &forwarding{sys: sys, log: log, ingress: slices.Clone(ingress), keys: map[string]bool{}}
}

func sysctlName(key string) string { return "net.ipv6.conf." + strings.ReplaceAll(key, "/", ".") }

// remember records key's value the first time, before it changes.
func (f *forwarding) remember(key, cur string) {
	if f.keys[key] {
		return
	}
	f.keys[key] = true
	f.saved = append(f.saved, savedSysctl{key: key, val: cur,
		inherited: f.on && f.keys["all/forwarding"] && strings.HasSuffix(key, "/forwarding")})
}

// ensure sets key to val, remembering the value it had the first time.
func (f *forwarding) ensure(key, val string) error {
	cur, err := f.sys.get(key)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", sysctlName(key), err)
	}
	if cur == val {
		return nil
	}
	f.remember(key, cur)
	if err := f.sys.set(key, val); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", sysctlName(key), val, err)
	}
	f.log.Debug("sysctl", "key", sysctlName(key), "from", cur, "to", val)
	return nil
}

// apply makes the namespace a router for the ingress interfaces while the
// uplinks stay hosts (level-triggered: an uplink that appeared since, or a
// value someone changed back, is put right).
func (f *forwarding) apply(uplinks []string) error {
	var errs []error
	for _, u := range uplinks {
		if err := f.ensure(u+"/accept_ra", "2"); err != nil {
			errs = append(errs, err)
		}
	}
	if !f.on {
		// The interfaces' own flags before all/forwarding sets them all.
		for _, i := range slices.Concat(f.ingress, uplinks) {
			if v, err := f.sys.get(i + "/forwarding"); err == nil {
				f.remember(i+"/forwarding", v)
			}
		}
	}
	if err := f.ensure("all/forwarding", "1"); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if !f.on {
		f.on = true
		f.log.Info("IPv6 forwarding on for the mobile networks", "ingress", f.ingress, "uplinks", uplinks)
	}
	for _, i := range f.ingress {
		if err := f.ensure(i+"/forwarding", "1"); err != nil {
			errs = append(errs, err)
		}
	}
	for _, u := range uplinks {
		if err := f.ensure(u+"/forwarding", "0"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// enabled reports whether forwarding is on.
func (f *forwarding) enabled() bool { return f != nil && f.on }

// restore puts back every value changed: all/forwarding first (writing it
// resets every interface's flag), then the interfaces' own. An interface
// that is gone is no error.
func (f *forwarding) restore() error {
	if f == nil || len(f.saved) == 0 {
		return nil
	}
	var errs []error
	order := slices.Clone(f.saved)
	slices.SortStableFunc(order, func(a, b savedSysctl) int {
		return boolInt(!strings.HasPrefix(a.key, "all/")) - boolInt(!strings.HasPrefix(b.key, "all/"))
	})
	for _, s := range order {
		if s.inherited {
			continue
		}
		if err := f.sys.set(s.key, s.val); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", sysctlName(s.key), s.val, err))
		}
	}
	f.saved, f.keys, f.on = nil, map[string]bool{}, false
	f.log.Info("IPv6 forwarding settings restored")
	return errors.Join(errs...)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
