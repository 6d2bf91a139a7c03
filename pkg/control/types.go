package control

import (
	"net/netip"
	"time"
)

// The JSON objects of the control API. Field names are part of the external
// contract (DESIGN.md section 6): extend compatibly, never rename. Addresses
// are netip.Addr, which encode as text ("2001:db8::1") and as "" when unset.
// Durations are whole seconds.

// Role of a binding: registered with the home agent or with a correspondent.
const (
	RoleHA = "ha"
	RoleCN = "cn"
)

// NoStatus is Binding.LastStatus before any Binding Acknowledgement arrived.
const NoStatus = -1

// Binding is one entry of the mobile node's Binding Update List.
type Binding struct {
	Peer      netip.Addr `json:"peer"`      // home agent or correspondent
	Role      string     `json:"role"`      // RoleHA or RoleCN
	BID       uint16     `json:"bid"`       // 0: binding without BID
	Interface string     `json:"interface"` // interface the CoA belongs to
	CoA       netip.Addr `json:"coa"`
	Priority  uint8      `json:"priority"`
	// State is the BUL engine's state name, e.g. "registering",
	// "registered", "deregistering", "failed".
	State     string `json:"state"`
	Sequence  uint16 `json:"sequence"`   // last sequence number sent
	Lifetime  uint32 `json:"lifetime"`   // seconds granted (or requested while pending)
	ExpiresIn int64  `json:"expires_in"` // seconds until the binding expires
	// LastStatus is the status of the last Binding Acknowledgement (or of
	// the BID sub-option when it differs), NoStatus before any.
	LastStatus     int    `json:"last_status"`
	LastStatusText string `json:"last_status_text,omitempty"` // e.g. "MCOA CONFLICT"
	LastError      string `json:"last_error,omitempty"`       // e.g. "no acknowledgement after 6 tries"
	// Tunnel is the device of the home agent tunnel that carries the
	// binding's packets, once the data plane has it working ("" before,
	// and without a data plane).
	Tunnel string `json:"tunnel,omitempty"`
	Health
}

// Health is a path's liveness, on a Binding and an Interface: Liveness is
// "alive", "suspect", "dead" or "unknown" ("" when not watched), RTTMs the
// round trip of its last answered probe in milliseconds, Loss the share of
// its last probes that went unanswered.
type Health struct {
	Liveness string  `json:"liveness,omitempty"`
	RTTMs    float64 `json:"rtt_ms,omitempty"`
	Loss     float64 `json:"loss,omitempty"`
}

// CacheEntry is one entry of mcoa-ha's binding cache.
type CacheEntry struct {
	HoA       netip.Addr `json:"hoa"`
	BID       uint16     `json:"bid"` // 0: binding without BID
	CoA       netip.Addr `json:"coa"`
	Priority  uint8      `json:"priority"`
	Sequence  uint16     `json:"sequence"`
	Lifetime  uint32     `json:"lifetime"` // seconds granted
	ExpiresIn int64      `json:"expires_in"`
	// HomeRegistration is true for a home registration (served as home
	// agent), false for a binding held as correspondent node.
	HomeRegistration bool `json:"home_registration"`
	// Prefixes are the NEMO mobile network prefixes registered for the
	// home address (RFC 3963), routed through its bindings.
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
}

// Counts summarises a daemon's state in Status.
type Counts struct {
	Bindings     int `json:"bindings"`
	Registered   int `json:"registered"`
	Interfaces   int `json:"interfaces"`
	Policies     int `json:"policies"`
	CacheEntries int `json:"cache_entries"`
}

// The daemons, as Status.Daemon names them.
const (
	DaemonMN = "mcoad"
	DaemonHA = "mcoa-ha"
)

// Status is the answer of GET /v1/status.
type Status struct {
	Daemon      string     `json:"daemon"` // DaemonMN or DaemonHA
	Version     string     `json:"version,omitempty"`
	HomeAddress netip.Addr `json:"home_address"`
	HomeAgent   netip.Addr `json:"home_agent"`
	Mode        string     `json:"mode"`               // registration: "bulk" or "individual"
	BIDMode     string     `json:"bid_mode,omitempty"` // "interface" or "coa"
	Profile     string     `json:"profile"`            // wire profile, e.g. "draft-00"
	Dataplane   string     `json:"dataplane,omitempty"`
	AtHome      bool       `json:"at_home"`
	Uptime      int64      `json:"uptime"` // seconds
	Counts      Counts     `json:"counts"`
	// MobileRouter is mcoad's NEMO state (RFC 3963); absent for a mobile
	// host and for mcoa-ha.
	MobileRouter *MobileRouter `json:"mobile_router,omitempty"`
	// Roles (mcoa-ha): RoleHomeAgent, RoleCorrespondent or both; a
	// correspondent node alone has no HomeAgent.
	Roles []string `json:"roles,omitempty"`
	// Correspondent (mcoa-ha): the addresses the correspondent role
	// answers on.
	Correspondent []netip.Addr `json:"correspondent,omitempty"`
	// DataplaneError (mcoad) is why the data plane fails to set up its
	// tunnels, rules or marks now (often a kernel without a feature the
	// backend needs); absent while it is in order.
	DataplaneError string `json:"dataplane_error,omitempty"`
	// Auth (mcoad) is how its Binding Updates are authenticated: "mn-ha"
	// (an RFC 4285 key is configured) or "none". On mcoa-ha's home agent:
	// "required" (BUs need the MN-HA option of their home address's key)
	// or "off" (allow_unauthenticated: home addresses without a key are
	// accepted unauthenticated); absent for a correspondent node alone.
	Auth string `json:"auth,omitempty"`
}

// MobileRouter is the NEMO part of mcoad's status.
type MobileRouter struct {
	Enabled  bool           `json:"enabled"`
	Mode     string         `json:"mode"` // "explicit" or "implicit"
	Prefixes []netip.Prefix `json:"prefixes"`
	Ingress  []string       `json:"ingress"`
	// Forwarding: mcoad has switched IPv6 forwarding on for the ingress
	// interfaces (it needs the data plane and a first look at the uplinks).
	Forwarding bool `json:"forwarding"`
	// HomeAgentNoNEMO: the home agent accepted the R flag with a BA
	// without it (RFC 3963 5.3): the prefixes are not routed.
	HomeAgentNoNEMO bool `json:"ha_no_nemo"`
	// LastStatus is the last NEMO rejection (140-143), 0 when none;
	// LastStatusText names it, LastError explains it.
	LastStatus     int    `json:"last_status"`
	LastStatusText string `json:"last_status_text,omitempty"`
	LastError      string `json:"last_error,omitempty"`
}

// Interface is one interface (or, with bid_mode "coa", one care-of address
// of an interface) as the mobile node sees it.
type Interface struct {
	Name     string     `json:"name"`
	Index    int        `json:"index"`
	BID      uint16     `json:"bid"`
	CoA      netip.Addr `json:"coa"`
	Priority uint8      `json:"priority"`
	State    string     `json:"state"` // e.g. "up", "down", "no-coa"
	HomeLink bool       `json:"home_link"`
	Metered  bool       `json:"metered"`
	Health
}

// Policy is a flow policy rule, the same shape as [[policy]] in the
// configuration.
type Policy struct {
	Name      string   `json:"name"`
	Protocol  string   `json:"protocol,omitempty"`   // "tcp", "udp", ...
	SrcPrefix string   `json:"src_prefix,omitempty"` // "2001:db8:bbbb::/64": a mobile network, or the home address
	SrcPort   string   `json:"src_port,omitempty"`   // "5060" or "5060-5061"
	DstPort   string   `json:"dst_port,omitempty"`   // same
	DstPrefix string   `json:"dst_prefix,omitempty"` // "2001:db8::/32"
	User      string   `json:"user,omitempty"`       // user name or uid
	Cgroup    string   `json:"cgroup,omitempty"`     // cgroup v2 path
	Prefer    []string `json:"prefer"`               // interface globs or BIDs, best first
}

// mcoa-ha's roles (Status.Roles).
const (
	RoleHomeAgent     = "home_agent"
	RoleCorrespondent = "correspondent"
)

// Event kinds.
const (
	EventBinding   = "binding"   // Binding set: a binding changed
	EventInterface = "interface" // Interface set
	EventPolicy    = "policy"    // Policy set
	EventCache     = "cache"     // Cache set (mcoa-ha)
	EventBU        = "bu"        // BU set: a Binding Update mcoa-ha received (mcoa-ha)
	EventReload    = "reload"    // configuration reloaded
	EventStatus    = "status"    // daemon-wide change (e.g. returned home); Message says what
	// EventLost replaces events a slow subscriber missed; Lost counts them.
	EventLost = "lost"
)

// Event is one line of GET /v1/events.
type Event struct {
	Seq       uint64      `json:"seq"` // set by Events.Publish, 1, 2, ...
	Time      time.Time   `json:"time"`
	Kind      string      `json:"kind"`
	Removed   bool        `json:"removed,omitempty"` // the object is gone
	Binding   *Binding    `json:"binding,omitempty"`
	Interface *Interface  `json:"interface,omitempty"`
	Policy    *Policy     `json:"policy,omitempty"`
	Cache     *CacheEntry `json:"cache,omitempty"`
	BU        *BU         `json:"bu,omitempty"`
	Message   string      `json:"message,omitempty"`
	Lost      uint64      `json:"lost,omitempty"`
}

// BU is a Binding Update as mcoa-ha received it and what became of it
// (event kind "bu"), one per BU, answered or not.
type BU struct {
	Src netip.Addr `json:"src"`
	Dst netip.Addr `json:"dst"`
	// HoA is the Home Address option's address; absent for a BU sent
	// from the home address itself (a mobile node back on its home link).
	HoA      netip.Addr `json:"hoa,omitzero"`
	Sequence uint16     `json:"sequence"`
	BIDs     []uint16   `json:"bids,omitempty"`     // the BID sub-options' BIDs, in order
	Prefixes int        `json:"prefixes,omitempty"` // Mobile Network Prefix options (NEMO)
	// Correspondent: the correspondent role took it (the home agent's
	// otherwise).
	Correspondent bool `json:"correspondent,omitempty"`
	// Status is the Binding Acknowledgement's status (0: accepted);
	// Answered says whether a BA went back (none for an accepted BU
	// without the A flag, nor for a dropped one).
	Status   int  `json:"status"`
	Answered bool `json:"answered"`
	// Dropped says why the BU was discarded without answer (e.g. "auth",
	// "rate-limited", "not-home-registration", "return-routability",
	// "not-served"); empty when it was processed.
	Dropped string `json:"dropped,omitempty"`
	// Refused names an authentication refusal ("no_key",
	// "unauthenticated", "bad_auth"), answered 129 or dropped.
	Refused string `json:"refused,omitempty"`
}

// Hint kinds of POST /v1/hint (NetworkManager dispatcher events).
const (
	HintUp           = "up"
	HintDown         = "down"
	HintConnectivity = "connectivity"
)

// Request bodies.

// RegisterRequest is the body of POST /v1/register: register (again, now)
// the listed BIDs, or all bindings when BIDs is empty. The body may be empty.
type RegisterRequest struct {
	BIDs []uint16 `json:"bids,omitempty"`
}

// DeregisterRequest is the body of POST /v1/deregister: exactly one of a
// non-empty BIDs or All.
type DeregisterRequest struct {
	BIDs []uint16 `json:"bids,omitempty"`
	All  bool     `json:"all,omitempty"`
}

// PriorityRequest is the body of POST /v1/priority.
type PriorityRequest struct {
	BID      uint16 `json:"bid"`
	Priority uint8  `json:"priority"`
}

// HintRequest is the body of POST /v1/hint. Interface may be empty (e.g.
// for a connectivity change of the whole host).
type HintRequest struct {
	Kind      string `json:"kind"`
	Interface string `json:"interface,omitempty"`
}

// OK is the answer of a successful mutating call.
type OK struct {
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Error string `json:"error"`
}
