package iface

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/netmon"
)

// BIDMode says what a BID identifies (draft section 5.1).
type BIDMode string

const (
	// BIDPerInterface: one BID per interface and one care-of address per
	// interface (the most recently configured preferred one), draft 5.1
	// case 1.
	BIDPerInterface BIDMode = "interface"
	// BIDPerCoA: one BID per care-of address, so an interface on a link
	// with several prefixes registers each of them (draft 5.1 case 2).
	BIDPerCoA BIDMode = "coa"
)

// Rule configures the interfaces whose name matches Match. The first
// matching rule applies; interfaces no rule matches get DefaultPriority.
type Rule struct {
	// Match is a path.Match glob on the interface name ("eth*", "wlan0").
	Match string `json:"match"`
	// Priority is sent in the BID sub-option: 0 means no priority and a
	// higher value a higher priority (draft 4.3.1).
	Priority uint8 `json:"priority"`
	// Exclude: never use this interface's addresses as care-of addresses.
	Exclude bool `json:"exclude,omitempty"`
	// BID fixes the BID of the matching interface (1..65535; 0 lets the
	// watcher choose). Fixed BIDs are never given to anything else. In
	// BIDPerCoA mode it applies to the interface's home-link entry only;
	// the interface's care-of addresses get BIDs of their own.
	BID uint16 `json:"bid,omitempty"`
}

// Config configures a Watcher. The zero value is usable: BIDs per
// interface, no home address, nothing persisted, the current namespace.
type Config struct {
	// HomeAddress is never a care-of address; an interface that has it is
	// on the home link.
	HomeAddress netip.Addr
	// HomeAgent: a Router Advertisement whose Router Address (RFC 6275
	// 7.2) or source is the home agent marks its link as the home link.
	HomeAgent netip.Addr
	// HomePrefix: addresses inside it are never care-of addresses, and an
	// interface that has one, or that hears a Router Advertisement with
	// this prefix, is on the home link. Zero: HomeAddress/64.
	HomePrefix netip.Prefix

	// BIDMode is BIDPerInterface ("" too) or BIDPerCoA.
	BIDMode BIDMode
	// Rules are the per-interface settings, first match wins.
	Rules []Rule
	// DefaultPriority is the priority of interfaces no rule matches.
	DefaultPriority uint8
	// MeteredPriority caps the priority of metered interfaces (SetMetered).
	// Zero means 1, the lowest priority that is still a priority.
	MeteredPriority uint8

	// StateDir keeps the BIDs across restarts (file StateFile). Empty:
	// BIDs live in memory only.
	StateDir string
	// RotateBIDs gives every BID that is not fixed by a Rule a new random
	// value at start, for privacy (draft section 2); RotateInterval > 0
	// does it again at that interval while running.
	RotateBIDs     bool
	RotateInterval time.Duration

	// AllowDeprecated lets deprecated addresses (preferred lifetime over)
	// be care-of addresses, ranked after the preferred ones.
	AllowDeprecated bool
	// TunnelPrefix: interfaces whose name starts with it are the daemon's
	// own tunnels, never care-of interfaces. Empty: DefaultTunnelPrefix.
	TunnelPrefix string

	// Debounce is the quiet time after an event before the kernel state is
	// read again (DefaultDebounce: the netlink messages of one change come
	// within about a millisecond, so 2 ms coalesces them and keeps a new
	// care-of address under 5 ms from kernel to engine). MaxDelay bounds how long a stream of
	// events can put that off (DefaultMaxDelay). MaxRate (per second) and
	// Burst bound how often the state is read at all, so that a flapping
	// link cannot flood the engine (DefaultMaxRate, DefaultBurst).
	Debounce time.Duration
	MaxDelay time.Duration
	MaxRate  float64
	Burst    int

	// Monitor is the daemon's netlink monitor (of NetNS) to read links and
	// addresses from. Nil: the watcher runs one of its own.
	Monitor *netmon.Monitor
	// NetNS is the network namespace to watch: a name under /run/netns, or
	// a path such as /proc/PID/ns/net. Empty: the caller's namespace.
	NetNS string
	// ConfirmTimeout is how long the addresses of a link that comes back
	// from a carrier loss wait for a Router Advertisement before they are
	// used again (DefaultConfirmTimeout): the link may be another one, and
	// registering a care-of address of the old link would send traffic
	// nowhere. The watcher solicits one at once. Negative: no wait.
	ConfirmTimeout time.Duration
	// DisableRA turns off Router Solicitations and the Router
	// Advertisement listener (movement and home-link detection by RA).
	DisableRA bool

	// Source replaces the kernel: the watcher reads links and addresses
	// from it, subscribes to nothing and listens to no RA; Hint triggers
	// the re-reads. For tests and simulations.
	Source Source

	Logger *slog.Logger
	Clock  clock.Clock
}

// Defaults.
const (
	DefaultDebounce       = 2 * time.Millisecond
	DefaultConfirmTimeout = time.Second
	DefaultMaxDelay       = 50 * time.Millisecond
	DefaultMaxRate        = 10.0
	DefaultBurst          = 8
	DefaultTunnelPrefix   = "mip"
	// StateFile is the BID file in Config.StateDir.
	StateFile = "iface-bids.json"
)

// ErrInvalidConfig is what every ConfigError unwraps to.
var ErrInvalidConfig = errors.New("iface: invalid configuration")

// ConfigError names the configuration field that is wrong.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return "iface: " + e.Field + ": " + e.Reason }
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

func cfgErr(field, format string, a ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// normalize validates c and returns a copy with the defaults filled in.
func (c *Config) normalize() (Config, error) {
	var n Config
	if c != nil {
		n = *c
	}
	switch n.BIDMode {
	case "":
		n.BIDMode = BIDPerInterface
	case BIDPerInterface, BIDPerCoA:
	default:
		return n, cfgErr("BIDMode", "%q is neither %q nor %q", n.BIDMode, BIDPerInterface, BIDPerCoA)
	}
	if n.HomeAddress.IsValid() {
		if !is6(n.HomeAddress) {
			return n, cfgErr("HomeAddress", "%v is not an IPv6 address", n.HomeAddress)
		}
		n.HomeAddress = n.HomeAddress.WithZone("")
	}
	if n.HomeAgent.IsValid() && !is6(n.HomeAgent) {
		return n, cfgErr("HomeAgent", "%v is not an IPv6 address", n.HomeAgent)
	}
	if n.HomePrefix.IsValid() {
		if !is6(n.HomePrefix.Addr()) {
			return n, cfgErr("HomePrefix", "%v is not an IPv6 prefix", n.HomePrefix)
		}
		n.HomePrefix = n.HomePrefix.Masked()
		if n.HomeAddress.IsValid() && !n.HomePrefix.Contains(n.HomeAddress) {
			return n, cfgErr("HomePrefix", "%v does not contain the home address %v", n.HomePrefix, n.HomeAddress)
		}
	} else if n.HomeAddress.IsValid() {
		n.HomePrefix = netip.PrefixFrom(n.HomeAddress, 64).Masked()
	}
	if err := validateRules(n.Rules); err != nil {
		return n, err
	}
	n.Rules = append([]Rule(nil), n.Rules...)
	if n.MeteredPriority == 0 {
		n.MeteredPriority = 1
	}
	if n.TunnelPrefix == "" {
		n.TunnelPrefix = DefaultTunnelPrefix
	}
	switch {
	case n.Debounce < 0:
		return n, cfgErr("Debounce", "negative")
	case n.MaxDelay < 0:
		return n, cfgErr("MaxDelay", "negative")
	case n.MaxRate < 0:
		return n, cfgErr("MaxRate", "negative")
	case n.Burst < 0:
		return n, cfgErr("Burst", "negative")
	case n.RotateInterval < 0:
		return n, cfgErr("RotateInterval", "negative")
	}
	if n.Debounce == 0 {
		n.Debounce = DefaultDebounce
	}
	if n.ConfirmTimeout == 0 {
		n.ConfirmTimeout = DefaultConfirmTimeout
	}
	if n.MaxDelay == 0 {
		n.MaxDelay = DefaultMaxDelay
	}
	if n.MaxDelay < n.Debounce {
		n.MaxDelay = n.Debounce
	}
	if n.MaxRate == 0 {
		n.MaxRate = DefaultMaxRate
	}
	if n.Burst == 0 {
		n.Burst = DefaultBurst
	}
	if n.Logger == nil {
		n.Logger = slog.New(slog.DiscardHandler)
	}
	if n.Clock == nil {
		n.Clock = clock.Real{}
	}
	return n, nil
}

func validateRules(rules []Rule) error {
	fixed := map[uint16]int{}
	for i, r := range rules {
		field := fmt.Sprintf("Rules[%d]", i)
		if r.Match == "" {
			return cfgErr(field, "empty match")
		}
		if _, err := path.Match(r.Match, ""); err != nil {
			return cfgErr(field, "bad pattern %q: %v", r.Match, err)
		}
		if r.BID != 0 {
			if j, dup := fixed[r.BID]; dup {
				return cfgErr(field, "BID %d is already fixed by Rules[%d]", r.BID, j)
			}
			fixed[r.BID] = i
		}
	}
	return nil
}

// matchRule returns the first rule matching name.
// DefaultRules apply when the configuration has no [[interface]] at all:
// wired first, then Wi-Fi, then cellular, by the kernel's and systemd's
// predictable names alike.
var DefaultRules = []Rule{
	{Match: "en*", Priority: 30}, {Match: "eth*", Priority: 30},
	{Match: "wl*", Priority: 20}, {Match: "ww*", Priority: 10},
}

// DefaultExcluded are the names of container and virtual machine
// interfaces (bridges, veth ends, host-only networks): never care-of
// interfaces unless a rule names them.
var DefaultExcluded = []string{
	"docker*", "br-*", "virbr*", "lxdbr*", "lxcbr*", "veth*", "vnet*",
	"vboxnet*", "vmnet*", "cni*", "podman*",
}

// defaultExcluded reports whether name is a container or VM interface.
func defaultExcluded(name string) bool {
	for _, p := range DefaultExcluded {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

func matchRule(rules []Rule, name string) (Rule, bool) {
	for _, r := range rules {
		if ok, _ := path.Match(r.Match, name); ok {
			return r, true
		}
	}
	return Rule{}, false
}

func is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }
