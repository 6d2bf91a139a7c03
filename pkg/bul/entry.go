package bul

import (
	"net/netip"
	"time"

	"github.com/mcoad/mcoad/pkg/liveness"
)

// want is what reconciliation decided for a binding.
type want uint8

const (
	wantRegister want = iota
	wantRemove
)

// inflight is what the BU in flight says about a binding.
type inflight struct {
	coa    netip.Addr // registered CoA, or for a removal the CoA being removed
	prio   uint8
	remove bool
}

// entry is one Binding Update List entry (peer = the home agent; the BID is
// the key, 0 for the binding without BID of single-CoA mode).
type entry struct {
	bid     uint16
	iface   string
	ifindex int

	// Desired state, set by reconcile.
	want  want
	coa   netip.Addr
	prio  uint8
	force bool // send a BU even if nothing changed (BRR, Register, retry)

	// What the peer acknowledged.
	registered bool
	regCoA     netip.Addr
	regPrio    uint8
	granted    time.Duration
	expires    time.Time
	refreshAt  time.Time

	// The BU in flight, if any.
	tx          *txn
	in          inflight
	everSent    bool // a registration BU was sent
	lastSentCoA netip.Addr
	lastRegAt   time.Time

	progress
}

// progress is what home and correspondent entries alike keep about their
// registration: sequence, outcome, back-off and the state last reported.
type progress struct {
	seq         uint16
	lastStatus  int
	lastErr     string
	failed      bool
	backoff     time.Duration
	notBefore   time.Time
	retransmits int

	reported     State
	reportedLive liveness.State
	reportedSet  bool
}

func (e *entry) state() State { return stateOf(e.want, e.failed, e.registered, e.tx != nil) }

// stateOf is the State of a home or correspondent entry: what it wants,
// whether the peer rejected it, holds it, and a BU is in flight.
func stateOf(w want, failed, registered, inflight bool) State {
	switch {
	case w == wantRemove:
		return StateDeregistering
	case failed:
		return StateFailed
	case registered && inflight:
		return StateRefreshing
	case registered:
		return StateRegistered
	}
	return StatePending
}

// oldCoA is the CoA the peer may hold for this binding.
func (e *entry) oldCoA() netip.Addr {
	if e.registered {
		return e.regCoA
	}
	return e.lastSentCoA
}

type txKind uint8

const (
	txIndividual txKind = iota // one BID, no flags (draft 5.2, 5.4)
	txBulk                     // C-flag BID sub-options (draft 5.3)
	txSingle                   // no BID (RFC 6275): single-CoA mode
	txDeregAll                 // no BID, lifetime 0, from a foreign CoA
	txHome                     // no BID, lifetime 0, from the home link (RFC 6275 11.5.4)
)

type sentSeq struct {
	seq uint16
	at  time.Time
	src netip.Addr
}

// txn is one BU transaction: the same content resent (with a new sequence
// number each time, RFC 6275 11.8) until a BA settles it.
type txn struct {
	kind     txKind
	items    []*entry
	sent     [4]sentSeq // the latest transmissions, ring
	nsent    int
	timeout  time.Duration
	deadline time.Time
	blocked  bool // nothing to send from
	resend   bool // status 135: resend at once without back-off
	restart  bool // Refresh: resend at once, back-off from the start
	first    bool // first registration with the HA
}

func (t *txn) record(s sentSeq) {
	t.sent[t.nsent%len(t.sent)] = s
	t.nsent++
}

func (t *txn) find(seq uint16) (sentSeq, bool) {
	n := min(t.nsent, len(t.sent))
	for i := range n {
		if s := t.sent[i]; s.seq == seq {
			return s, true
		}
	}
	return sentSeq{}, false
}

func (t *txn) hasBID(bid uint16) bool {
	if t.kind != txIndividual && t.kind != txBulk {
		return false
	}
	for _, e := range t.items {
		if e.bid == bid {
			return true
		}
	}
	return false
}

// inflightMatches reports whether the BU in flight says what e wants.
func (e *entry) inflightMatches() bool {
	if e.want == wantRemove {
		return e.in.remove
	}
	return !e.in.remove && e.in.coa == e.coa && e.in.prio == e.prio
}

// desire sets what e should be. A change of mind cancels the back-off of
// a rejected BU: the new BU says something else.
func (e *entry) desire(w want, coa netip.Addr, prio uint8) {
	if e.want != w || e.coa != coa || e.prio != prio {
		e.notBefore, e.backoff = time.Time{}, 0
		if e.want != w {
			e.failed = false
		}
	}
	e.want, e.coa, e.prio = w, coa, prio
}
