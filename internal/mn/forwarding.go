package mn

import (
	"encoding/json"
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
	// file keeps saved across a crash ("": nowhere): a mcoad killed as
	// a mobile router would leave forwarding on, and `mcoad -cleanup`
	// removes the forward chain that confines it; the next start or
	// -cleanup puts the values back from it.
	file string

	on    bool
	saved []savedSysctl // in the order first changed
	keys  map[string]bool
	dirty bool // saved grew since the file was written
}

// forwardingFile is the state file of the values mcoad changed.
const forwardingFile = "forwarding.json"

// savedSysctl is a value as it was before mcoad changed it. inherited:
// captured after mcoad switched all/forwarding on, so the value is the one
// that switch gave the interface, and restoring all/forwarding puts the
// interface back by itself.
type savedSysctl struct {
	Key       string `json:"key"`
	Val       string `json:"value"`
	Inherited bool   `json:"inherited,omitempty"`
}

// newForwarding: file ("" none) may hold what a mcoad that did not stop
// changed; those are the values to put back, not the current ones.
func newForwarding(sys sysctls, ingress []string, file string, log *slog.Logger) *forwarding {
	f := &forwarding{sys: sys, log: log, ingress: slices.Clone(ingress), file: file, keys: map[string]bool{}}
	if saved, err := loadSaved(file); err != nil {
		log.Warn("forwarding settings of an earlier run", "err", err)
	} else if len(saved) > 0 {
		f.saved, f.on = saved, true
		for _, v := range saved {
			f.keys[v.Key] = true
		}
		log.Info("IPv6 forwarding settings of a run that did not stop: they are put back on stop", "file", file)
	}
	return f
}

func loadSaved(file string) ([]savedSysctl, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var saved []savedSysctl
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return saved, nil
}

// persist writes saved to the file (atomically) when it grew.
func (f *forwarding) persist() error {
	if f.file == "" || !f.dirty {
		return nil
	}
	b, err := json.Marshal(f.saved)
	if err != nil {
		return err
	}
	tmp := f.file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("forwarding state: %w", err)
	}
	if err := os.Rename(tmp, f.file); err != nil {
		return fmt.Errorf("forwarding state: %w", err)
	}
	f.dirty = false
	return nil
}

// RestoreForwarding puts back the IPv6 forwarding settings that a mcoad
// which did not stop left changed (the state file in stateDir), for
// `mcoad -cleanup`. Nothing saved is success.
func RestoreForwarding(stateDir string, log *slog.Logger) error {
	f := newForwarding(procSysctls{}, nil, filepath.Join(stateDir, forwardingFile), log)
	return f.restore()
}

func sysctlName(key string) string { return "net.ipv6.conf." + strings.ReplaceAll(key, "/", ".") }

// remember records key's value the first time, before it changes.
func (f *forwarding) remember(key, cur string) {
	if f.keys[key] {
		return
	}
	f.keys[key] = true
	f.saved = append(f.saved, savedSysctl{Key: key, Val: cur,
		Inherited: f.on && f.keys["all/forwarding"] && strings.HasSuffix(key, "/forwarding")})
	f.dirty = true
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
	if err := f.persist(); err != nil {
		return err // changing what could not be saved could not be undone
	}
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
		return boolInt(!strings.HasPrefix(a.Key, "all/")) - boolInt(!strings.HasPrefix(b.Key, "all/"))
	})
	for _, s := range order {
		if s.Inherited {
			continue
		}
		if err := f.sys.set(s.Key, s.Val); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", sysctlName(s.Key), s.Val, err))
		}
	}
	f.saved, f.keys, f.on, f.dirty = nil, map[string]bool{}, false, false
	if f.file != "" && len(errs) == 0 {
		if err := os.Remove(f.file); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("forwarding state: %w", err))
		}
	}
	f.log.Info("IPv6 forwarding settings restored")
	return errors.Join(errs...)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
