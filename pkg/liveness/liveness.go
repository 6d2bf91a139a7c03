// Package liveness tells, for every care-of address, whether its path to
// the home agent carries traffic both ways, so that a path that dies
// upstream with its link still up (a captive portal, a stalled bearer, a
// broken access router) is given up in a fraction of a second instead of at
// the next refresh.
//
// Passive first: packets received through a BID's tunnel prove its path
// alive, so a busy path is never probed. A path that falls silent after
// receiving, sends without receiving, has been idle for a while, or that a
// hint names, is probed with ICMPv6 echo requests from its care-of address,
// out of its interface, to the home agent (which every home agent answers).
// Multiplier unanswered probes in a row make it dead; it keeps being probed
// and is alive again only after answering for a hold-down time that grows
// when it flaps.
//
// A path that went quiet but whose probe is answered may mean the home
// agent lost the bindings (it restarted without its state): an echo from
// the home address through the tunnels tells, and when it is not answered
// the owner re-registers at once (Config.OnHomeLost).
package liveness

import (
	"errors"
	"net/netip"
	"time"
)

// State is a path's verdict.
type State string

const (
	Unknown State = "unknown" // not tested yet
	Alive   State = "alive"   // traffic or a probe came back lately
	Suspect State = "suspect" // a probe went unanswered; probing fast
	Dead    State = "dead"    // Multiplier probes unanswered; still probed
)

// Timers tune one path. Zero fields take Defaults' values.
type Timers struct {
	// Interval between probes while a path is checked, and the silence
	// after which a path that was receiving is checked.
	Interval time.Duration
	// Idle: a path with no proof of life for this long gets a keepalive
	// probe.
	Idle time.Duration
	// Multiplier unanswered probes in a row make a path dead (one more
	// when the check began with a lost keepalive, so that random loss on
	// an idle path does not fail it over).
	Multiplier int
	// HoldDown: a dead path must answer every probe for this long before
	// it is used again; doubled (up to 64 times) when it dies again
	// within a minute of coming back.
	HoldDown time.Duration
}

// Defaults are fast on unmetered links and frugal on metered ones.
func Defaults(metered bool) Timers {
	if metered {
		return Timers{Interval: 500 * time.Millisecond, Idle: 30 * time.Second, Multiplier: 3, HoldDown: 5 * time.Second}
	}
	return Timers{Interval: 50 * time.Millisecond, Idle: time.Second, Multiplier: 3, HoldDown: time.Second}
}

// withDefaults fills zero fields from Defaults(metered).
func (t Timers) withDefaults(metered bool) Timers {
	d := Defaults(metered)
	if t.Interval <= 0 {
		t.Interval = d.Interval
	}
	if t.Idle <= 0 {
		t.Idle = d.Idle
	}
	if t.Multiplier <= 0 {
		t.Multiplier = d.Multiplier
	}
	if t.HoldDown <= 0 {
		t.HoldDown = d.HoldDown
	}
	if t.Idle < t.Interval {
		t.Idle = t.Interval
	}
	return t
}

// Path is one care-of address to watch.
type Path struct {
	BID     uint16
	Iface   string
	Ifindex int
	CoA     netip.Addr
	Metered bool
	Timers  Timers // zero fields: Defaults(Metered)
}

// Traffic is what a BID's tunnel carried, as cumulative counters.
type Traffic struct {
	TxPackets, RxPackets uint64
}

// Health is a path's verdict and what it rests on.
type Health struct {
	BID       uint16     `json:"bid"`
	Interface string     `json:"interface"`
	CoA       netip.Addr `json:"coa"`
	State     State      `json:"state"`
	// Since: when State began.
	Since time.Time `json:"since"`
	// RTT of the last answered probe (0 before any).
	RTT time.Duration `json:"rtt"`
	// Loss: share of the last (up to 32) probes that went unanswered.
	Loss float64 `json:"loss"`
	// LastProof: the last packet or probe answer that came back.
	LastProof  time.Time `json:"last_proof"`
	ProbesSent uint64    `json:"probes_sent"`
	ProbesLost uint64    `json:"probes_lost"`
}

// Prober sends ICMPv6 echo requests (ICMPProber does, on Linux).
type Prober interface {
	// Probe sends an echo request with id and seq from src to dst out of
	// ifindex (0: routing decides).
	Probe(ifindex int, src, dst netip.Addr, id, seq uint16) error
}

// Errors.
var (
	ErrInvalidConfig = errors.New("liveness: invalid configuration")
)
