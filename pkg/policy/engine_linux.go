package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
)

// ops is what the engine asks of the kernel; the real one is netlinkOps, the
// tests' a recording fake.
type ops interface {
	// rules lists the IPv6 rules tagged with config.RuleProtocol.
	rules() ([]Rule, error)
	addRule(Rule) error
	delRule(Rule) error
	// setTable replaces the nftables table atomically; nil deletes it
	// (absent is fine).
	setTable(name string, t *nftTable) error
	// tableRules counts the rules of each chain of the named table; ok is
	// false when the table is absent.
	tableRules(name string) (counts map[string]int, ok bool, err error)
	close() error
}

// Engine keeps the kernel's policy routing equal to the last State applied.
// Its methods are safe for concurrent use.
type Engine struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	ops     ops
	closed  bool
	marks   *marks
	nftText string // the table as last installed ("" none)
	last    plan
}

// New takes over policy routing in the network namespace of the calling
// thread: it removes what a previous mcoad left (its ip rules and its
// nftables table) and installs nothing until Apply.
func New(cfg *Config) (*Engine, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	o, err := newNetlinkOps()
	if err != nil {
		return nil, err
	}
	return newEngine(c, o)
}

func newEngine(c Config, o ops) (*Engine, error) {
	e := &Engine{cfg: c, log: c.Logger.With("policy", c.NFTable), ops: o, marks: newMarks(c.Mark, c.Mask)}
	if c.Adopt {
		// The kept rules route on until the first Apply, which adds and
		// removes rules one by one and replaces (or deletes) the table
		// whatever it holds.
		e.nftText = "?"
		return e, nil
	}
	if err := cleanup(&e.cfg, o); err != nil {
		o.close()
		return nil, err
	}
	return e, nil
}

// Apply makes the kernel match st: the ip rules and the nftables table
// (the routes of the BIDs' tables are pkg/dataplane's). It also puts back
// whatever someone else removed, so calling it again with the same state is
// the self-healing check. A policy whose user or cgroup does not exist
// (yet) is left out and reported in the returned error, the rest applies.
func (e *Engine) Apply(ctx context.Context, st State) error {
	if err := checkState(st); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pl := compile(&e.cfg, e.marks, st)
	for _, err := range pl.skipped {
		if !slices.ContainsFunc(e.last.skipped, func(o error) bool { return o.Error() == err.Error() }) {
			e.log.Warn("policy left out", "err", err)
		}
	}
	e.last = pl
	errs := slices.Clone(pl.skipped)
	if err := e.syncRules(pl.rules); err != nil {
		errs = append(errs, err)
	}
	if err := e.syncTable(&pl); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// syncRules adds the missing rules before it removes the stale ones, so a
// rule that changes table never leaves a gap.
func (e *Engine) syncRules(want []Rule) error {
	have, err := e.ops.rules()
	if err != nil {
		return fmt.Errorf("policy: list ip rules: %w", err)
	}
	count := map[string]int{}
	for _, r := range have {
		count[r.String()]++
	}
	wanted := map[string]bool{}
	failed := map[int]bool{} // priorities whose new rule could not be added
	var errs []error
	for _, r := range want {
		k := r.String()
		wanted[k] = true
		if count[k] > 0 {
			continue
		}
		if err := e.ops.addRule(r); err != nil {
			errs = append(errs, fmt.Errorf("policy: ip rule %s: %w", k, err))
			failed[r.Priority] = true
			continue
		}
		e.log.Debug("ip rule added", "rule", k)
	}
	for _, r := range have {
		k := r.String()
		if wanted[k] && count[k] == 1 {
			continue
		}
		if !wanted[k] && failed[r.Priority] {
			continue // better the old rule than none until the next try
		}
		count[k]--
		if err := e.ops.delRule(r); err != nil {
			errs = append(errs, fmt.Errorf("policy: delete ip rule %s: %w", k, err))
			continue
		}
		e.log.Debug("ip rule removed", "rule", k)
	}
	return errors.Join(errs...)
}

func (e *Engine) syncTable(pl *plan) error {
	var t *nftTable
	text := ""
	if len(pl.rules) > 0 {
		t = buildTable(&e.cfg, pl)
		text = t.String()
	}
	if text == e.nftText && t != nil {
		counts, ok, err := e.ops.tableRules(e.cfg.NFTable)
		if err == nil && ok && sameCounts(t, counts) {
			return nil
		}
		if err == nil {
			e.log.Warn("nftables table changed behind our back: installing it again", "table", e.cfg.NFTable)
		}
	}
	if t == nil && e.nftText == "" {
		return nil
	}
	if err := e.ops.setTable(e.cfg.NFTable, t); err != nil {
		e.nftText = "?" // unknown: try again next time
		return fmt.Errorf("policy: nftables table %s: %w", e.cfg.NFTable, err)
	}
	e.nftText = text
	return nil
}

func sameCounts(t *nftTable, counts map[string]int) bool {
	if len(counts) != len(t.chains) {
		return false
	}
	for _, ch := range t.chains {
		if n, ok := counts[ch.name]; !ok || n != len(ch.rules) {
			return false
		}
	}
	return true
}

// Close removes everything the engine installed.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	err := cleanup(&e.cfg, e.ops)
	return errors.Join(err, e.ops.close())
}

// Keep closes the engine like Close but leaves its ip rules and nftables
// table in place, for the next mcoad to adopt (Config.Adopt) on a restart.
func (e *Engine) Keep() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return e.ops.close()
}

// Marks returns the fwmark of each BID alive at the last Apply.
func (e *Engine) Marks() map[uint16]uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[uint16]uint32, len(e.last.marks))
	for b, m := range e.last.marks {
		out[b] = m
	}
	return out
}

// Cleanup removes, in the network namespace of the calling thread,
// the policy routing a mcoad with this configuration installed: ip rules
// tagged config.RuleProtocol and the nftables table (the tunnel devices, and the
// routes of the BIDs' tables with them, are pkg/dataplane's). Nothing to
// remove is success.
func Cleanup(cfg *Config) error {
	c, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	o, err := newNetlinkOps()
	if err != nil {
		return err
	}
	return errors.Join(cleanup(&c, o), o.close())
}

func cleanup(c *Config, o ops) error {
	var errs []error
	if rs, err := o.rules(); err != nil {
		errs = append(errs, fmt.Errorf("policy: list ip rules: %w", err))
	} else {
		for _, r := range rs {
			if err := o.delRule(r); err != nil {
				errs = append(errs, fmt.Errorf("policy: delete ip rule %s: %w", r, err))
			}
		}
	}
	if err := o.setTable(c.NFTable, nil); err != nil {
		errs = append(errs, fmt.Errorf("policy: delete nftables table %s: %w", c.NFTable, err))
	}
	return errors.Join(errs...)
}
