package bul

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/liveness"
	"github.com/mcoad/mcoad/pkg/proto"
)

// CareOf is one care-of address as the interface watcher sees it. The
// watcher hands the engine the whole current set (SetCareOfs): the engine
// reconciles its Binding Update List against it.
type CareOf struct {
	BID      uint16     `json:"bid"`
	Iface    string     `json:"interface"`
	Ifindex  int        `json:"ifindex"`
	Addr     netip.Addr `json:"coa"`
	Priority uint8      `json:"priority"`
	// HomeLink: this interface is attached to the home link (the home
	// prefix is on-link there). Its address is never registered.
	HomeLink bool `json:"home_link"`
}

// Transport sends Mobility Header packets (pkg/mhsock implements it). The
// engine reuses p after Send returns: a Transport must not keep it.
type Transport interface {
	Send(p *proto.Packet, sign proto.Signer) error
}

// InterfaceSender is implemented by a Transport that can pin a packet to an
// outgoing interface. The engine uses it when present, with the interface of
// the source address (the home-link interface for the returning-home BU,
// whose source, the home address, is not yet usable for routing decisions).
type InterfaceSender interface {
	SendOn(ifindex int, p *proto.Packet, sign proto.Signer) error
}

// MarkSender is implemented by a Transport that can send a packet with a
// fwmark of its own: the engine uses it for a tunnel without a device
// (Tunnel.Mark).
type MarkSender interface {
	SendMarked(mark uint32, p *proto.Packet, sign proto.Signer) error
}

// Mode is a registration mode.
type Mode string

const (
	// ModeBulk registers all care-of addresses with the home agent in one
	// BU carrying one C-flag BID sub-option per binding (draft 5.3).
	ModeBulk Mode = "bulk"
	// ModeIndividual sends one BU per binding from its own care-of address
	// (draft 5.2).
	ModeIndividual Mode = "individual"
	// ModeSingle registers only the primary care-of address without BID,
	// as RFC 6275 does: the fallback when the peer does not know MCoA.
	ModeSingle Mode = "single"
)

// ParseMode parses a registration mode ("" means bulk).
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeBulk:
		return ModeBulk, nil
	case ModeIndividual:
		return ModeIndividual, nil
	case ModeSingle:
		return ModeSingle, nil
	}
	return "", fmt.Errorf("%w: unknown registration mode %q (bulk, individual or single)", ErrInvalidConfig, s)
}

// ReturnHome says what to do when an interface attaches to the home link
// (draft 3.3).
type ReturnHome string

const (
	// ReturnAll returns home: de-register every binding (a BU without BID,
	// lifetime 0, sent from the home link) and register nothing while home.
	ReturnAll ReturnHome = "all"
	// KeepForeign keeps the foreign bindings: only the home-link
	// interface's binding is de-registered (through a foreign care-of
	// address) and that interface must stay disabled (Status.HomeLinkInterface).
	// With no foreign care-of address left it behaves as ReturnAll.
	KeepForeign ReturnHome = "keep-foreign"
)

// ParseReturnHome parses a return-home policy ("" means all).
func ParseReturnHome(s string) (ReturnHome, error) {
	switch ReturnHome(s) {
	case "", ReturnAll:
		return ReturnAll, nil
	case KeepForeign:
		return KeepForeign, nil
	}
	return "", fmt.Errorf("%w: unknown return-home policy %q (all or keep-foreign)", ErrInvalidConfig, s)
}

// State is the state of one Binding Update List entry.
type State string

const (
	StatePending       State = "pending"       // not registered; a BU is due or in flight
	StateRegistered    State = "registered"    // acknowledged, nothing in flight
	StateRefreshing    State = "refreshing"    // registered, and a new BU is in flight
	StateDeregistering State = "deregistering" // to be removed; BU due or in flight
	StateFailed        State = "failed"        // the peer rejected the last BU; retried with back-off
	// StateDown: the path is dead and its binding withdrawn (another path
	// carries its flows); it is probed and registered again once alive.
	StateDown State = "down"
)

// Roles of an Entry: a binding with the home agent, or with a correspondent
// (route optimisation).
const (
	RoleHA = "ha"
	RoleCN = "cn"
)

// Entry is a copy of one Binding Update List entry, for the control API.
type Entry struct {
	Peer      netip.Addr `json:"peer"`
	Role      string     `json:"role"` // RoleHA or RoleCN
	BID       uint16     `json:"bid"`  // 0: a binding without BID (single-CoA mode)
	Interface string     `json:"interface"`
	CoA       netip.Addr `json:"coa"`
	Priority  uint8      `json:"priority"`
	State     State      `json:"state"`
	// Sequence of the last BU that carried this binding.
	Sequence uint16 `json:"sequence"`
	// Lifetime granted by the peer, in seconds (0 while not registered).
	Lifetime int `json:"lifetime"`
	// ExpiresIn: seconds until the peer's binding expires (0 when none).
	ExpiresIn int `json:"expires_in"`
	// LastStatus is the status of the last BA for this binding (the
	// per-BID status when the BA carried one), -1 before any.
	LastStatus int `json:"last_status"`
	// LastError says why the binding is not where it should be.
	LastError   string `json:"last_error,omitempty"`
	Retransmits int    `json:"retransmits"`
	// Liveness of the path (pkg/liveness; "" without a verdict), the round
	// trip of its last answered probe and the share of its last probes
	// lost.
	Liveness liveness.State `json:"liveness,omitempty"`
	RTT      time.Duration  `json:"rtt,omitempty"`
	Loss     float64        `json:"loss"`
	// TunnelBID numbers the home agent tunnel that carries the binding's
	// packets (its device and routing table): the BID, or for a binding
	// without BID the BID of its care-of address's interface (0: none).
	TunnelBID uint16 `json:"tunnel_bid,omitempty"`
	// Tunnel is that tunnel's device once the data plane reports it
	// working (SetTunnels); "" until then.
	Tunnel string `json:"tunnel,omitempty"`

	expires time.Time
}

// Tunnel is a home agent tunnel that carries packets, as the data plane
// reports it (SetTunnels).
type Tunnel struct {
	BID     uint16 // the BID that numbers it (Entry.TunnelBID)
	Ifindex int    // its device's interface index (0: it has none)
	Name    string // its device's name (for a tunnel without one, what status shows)
	// Mark: a tunnel without a device (the eBPF data plane) is entered by
	// sending from the home address with this fwmark, which routes the
	// packet into the BID's table (MarkSender).
	Mark uint32
}

// usable reports whether packets can be sent into t.
func (t Tunnel) usable() bool { return t.Ifindex > 0 || t.Mark != 0 }

// Counters count the engine's signalling.
type Counters struct {
	BUsSent         uint64            `json:"bus_sent"`
	Retransmissions uint64            `json:"retransmissions"`
	BAsAccepted     uint64            `json:"bas_accepted"`
	BAsIgnored      map[string]uint64 `json:"bas_ignored"` // by reason
	SeqResyncs      uint64            `json:"seq_resyncs"` // status 135
	Refreshes       uint64            `json:"refreshes"`   // Refresh: the home agent lost the bindings
	BRRs            uint64            `json:"brrs"`
	BRRsIgnored     uint64            `json:"brrs_ignored"`
	BEs             uint64            `json:"bes"`
	BEsIgnored      uint64            `json:"bes_ignored"`
	SendErrors      uint64            `json:"send_errors"`
	InboundDropped  uint64            `json:"inbound_dropped"` // queue full
}

// Reasons a received message was ignored (Counters.BAsIgnored keys).
const (
	IgnoreWrongSource  = "wrong-source"
	IgnoreWrongDest    = "wrong-destination"
	IgnoreUnknownSeq   = "unknown-sequence"
	IgnoreUnknownBID   = "unknown-bid"
	IgnoreAuth         = "auth"
	IgnoreUnexpected   = "unexpected-type" // not a BA, BRR or BE
	IgnoreMalformedBID = "malformed-bid"
)

// Status summarises the engine.
type Status struct {
	HomeAddress    netip.Addr `json:"home_address"`
	HomeAgent      netip.Addr `json:"home_agent"`
	Mode           Mode       `json:"mode"` // in use
	ConfiguredMode Mode       `json:"configured_mode"`
	FallbackReason string     `json:"fallback_reason,omitempty"`
	ReturnHome     ReturnHome `json:"return_home"`
	// AtHome: the node is returning (or returned) home: nothing is
	// registered with the home agent.
	AtHome bool `json:"at_home"`
	// HomeAddressUsable: the home agent accepted the de-registration sent
	// from the home link, so it no longer defends the home address; only
	// then may the home address be configured on the home link.
	HomeAddressUsable bool `json:"home_address_usable"`
	// HomeLinkInterface is the interface attached to the home link while
	// the node does not return home (KeepForeign): it must stay disabled.
	HomeLinkInterface string `json:"home_link_interface,omitempty"`
	// DeregisteredAll: DeregisterAll (or Stop) is in force until Register.
	DeregisteredAll bool `json:"deregistered_all"`
	// NoCareOf: no care-of address to send from.
	NoCareOf bool     `json:"no_care_of"`
	Sequence uint16   `json:"sequence"` // last sequence number used
	Bindings int      `json:"bindings"`
	Counters Counters `json:"counters"`
	// MobileRouter is set when the node is a NEMO mobile router.
	MobileRouter *MobileRouterStatus `json:"mobile_router,omitempty"`
}

// EventType says what an Event reports.
type EventType string

const (
	EventBinding EventType = "binding" // an entry changed state (Binding set)
	EventRemoved EventType = "removed" // an entry left the list (Binding set, last view)
	EventMode    EventType = "mode"    // the registration mode in use changed
	EventHome    EventType = "home"    // AtHome or HomeAddressUsable changed
)

// Event is a change notification.
type Event struct {
	Time              time.Time `json:"time"`
	Type              EventType `json:"type"`
	Binding           *Entry    `json:"binding,omitempty"`
	Mode              Mode      `json:"mode,omitempty"`
	AtHome            bool      `json:"at_home"`
	HomeAddressUsable bool      `json:"home_address_usable"`
	Detail            string    `json:"detail,omitempty"`
}

// Config configures an Engine. Zero values mean defaults.
type Config struct {
	HomeAddress netip.Addr
	HomeAgent   netip.Addr
	// Lifetime requested in BUs; default 420 s, rounded up to 4 s units.
	Lifetime   time.Duration
	Mode       Mode       // ModeBulk (default) or ModeIndividual
	ReturnHome ReturnHome // ReturnAll (default) or KeepForeign
	Profile    *proto.Profile
	Auth       Auth
	// Store keeps sequence numbers across restarts; nil: a MemStore.
	Store     Store
	Transport Transport // required
	Clock     clock.Clock
	Logger    *slog.Logger
	// Correspondents are registered with after return routability
	// (route optimisation): one binding per BID, never bulk.
	Correspondents []netip.Addr
	// DataPlane: a data plane carries the home address's packets through
	// one tunnel per binding and reports the working ones (SetTunnels);
	// the HoTI leaves from the home address through one. false: return
	// routability cannot run and the correspondents are not registered.
	DataPlane bool
	// OnChange is called on the engine goroutine for every change. It must
	// not block (hand the event to a buffered channel, or drop it).
	OnChange func(Event)
	// MobileRouter makes the node a NEMO mobile router (RFC 3963): every
	// BU to the home agent carries the R flag. nil: a mobile host.
	MobileRouter *MobileRouter
}

// MobileRouter configures NEMO Basic Support (RFC 3963).
type MobileRouter struct {
	// Prefixes are the mobile network prefixes. In explicit mode each
	// goes in a Mobile Network Prefix option of every registration BU.
	Prefixes []netip.Prefix
	// Implicit: send no Mobile Network Prefix option; the home agent
	// uses the prefixes it is configured with (RFC 3963 5.1).
	Implicit bool
}

// MobileRouterStatus is the NEMO part of Status.
type MobileRouterStatus struct {
	Mode     string         `json:"mode"` // "explicit" or "implicit"
	Prefixes []netip.Prefix `json:"prefixes"`
	// HomeAgentNoNEMO: the home agent accepted a BU with the R flag with
	// a BA without it: it does not support NEMO (RFC 3963 5.3), so the
	// home address is registered but the prefixes are not routed.
	HomeAgentNoNEMO bool `json:"ha_no_nemo"`
	// LastStatus is the last NEMO rejection (140-143), 0 when none.
	LastStatus int    `json:"last_status"`
	LastError  string `json:"last_error,omitempty"`
}

// Errors.
var (
	ErrInvalidConfig = errors.New("bul: invalid configuration")
	ErrInvalidCareOf = errors.New("bul: invalid care-of address set")
	ErrUnknownBID    = errors.New("bul: unknown BID")
	ErrStopped       = errors.New("bul: engine stopped")
)

// Protocol timing (RFC 6275 sections 11.8 and 13).
const (
	initialTimeout      = proto.InitialBindAckTimeoutMs * time.Millisecond
	initialTimeoutFirst = proto.InitialBindAckTimeoutFirstRegMs * time.Millisecond
	maxTimeout          = proto.MaxBindAckTimeoutMs * time.Millisecond
	maxUpdateRate       = proto.MaxUpdateRatePerSecond
	defaultLifetime     = 420 * time.Second
	// refreshNum/refreshDen: refresh at 80% of the granted lifetime, which
	// leaves time for a full back-off series (1+2+...+32 s) at 420 s.
	refreshNum, refreshDen = 8, 10
	// seqWindow sequence numbers are reserved in the Store at a time.
	seqWindow = 64
)

func (c *Config) normalize() error {
	if !c.HomeAddress.Is6() || c.HomeAddress.Is4In6() {
		return fmt.Errorf("%w: home address %v is not an IPv6 address", ErrInvalidConfig, c.HomeAddress)
	}
	if !c.HomeAgent.Is6() || c.HomeAgent.Is4In6() {
		return fmt.Errorf("%w: home agent %v is not an IPv6 address", ErrInvalidConfig, c.HomeAgent)
	}
	if c.Transport == nil {
		return fmt.Errorf("%w: no transport", ErrInvalidConfig)
	}
	if c.Lifetime == 0 {
		c.Lifetime = defaultLifetime
	}
	const unit = proto.LifetimeUnitSeconds * time.Second
	if c.Lifetime < unit || c.Lifetime > 0xffff*unit {
		return fmt.Errorf("%w: lifetime %v out of range (4s to %ds)", ErrInvalidConfig, c.Lifetime, 0xffff*proto.LifetimeUnitSeconds)
	}
	c.Lifetime = (c.Lifetime + unit - 1) / unit * unit // whole 4 s units, rounded up
	m, err := ParseMode(string(c.Mode))
	if err != nil {
		return err
	}
	if m == ModeSingle {
		return fmt.Errorf("%w: mode must be bulk or individual (single is a fallback)", ErrInvalidConfig)
	}
	c.Mode = m
	if c.ReturnHome, err = ParseReturnHome(string(c.ReturnHome)); err != nil {
		return err
	}
	if c.Profile == nil {
		c.Profile = proto.Draft00
	}
	if c.Store == nil {
		c.Store = NewMemStore()
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if r := c.MobileRouter; r != nil {
		if !r.Implicit && len(r.Prefixes) == 0 {
			return fmt.Errorf("%w: an explicit-mode mobile router needs at least one prefix", ErrInvalidConfig)
		}
		ps := make([]netip.Prefix, len(r.Prefixes))
		for i, p := range r.Prefixes {
			if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				return fmt.Errorf("%w: mobile network prefix %v is not an IPv6 prefix", ErrInvalidConfig, p)
			}
			ps[i] = p.Masked()
		}
		c.MobileRouter = &MobileRouter{Prefixes: ps, Implicit: r.Implicit} // ours: the caller may reuse its copy
	}
	return nil
}

func validateCareOfs(cos []CareOf) error {
	seen := make(map[uint16]bool, len(cos))
	for _, co := range cos {
		switch {
		case co.BID == 0:
			return fmt.Errorf("%w: BID 0 is reserved (interface %q)", ErrInvalidCareOf, co.Iface)
		case seen[co.BID]:
			return fmt.Errorf("%w: BID %d appears twice", ErrInvalidCareOf, co.BID)
		case !co.Addr.Is6() || co.Addr.Is4In6() || co.Addr.IsUnspecified() || co.Addr.IsMulticast():
			return fmt.Errorf("%w: BID %d: %v is not a usable IPv6 address", ErrInvalidCareOf, co.BID, co.Addr)
		}
		seen[co.BID] = true
	}
	return nil
}
