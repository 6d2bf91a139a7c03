package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

// Defaults (DESIGN.md section 6).
const (
	DefaultMNPath        = "/etc/mcoad/mcoad.toml"
	DefaultHAPath        = "/etc/mcoad/mcoa-ha.toml"
	DefaultStateDir      = "/var/lib/mcoad"
	DefaultMNSocket      = "/run/mcoad/mcoad.sock"
	DefaultHASocket      = "/run/mcoad/mcoa-ha.sock"
	DefaultGroup         = "mcoa"
	DefaultLifetime      = 420 * time.Second
	DefaultProfile       = "draft-00"
	DefaultBIDOptionType = 35
	DefaultMark          = 0x4d000000 // 'M' in the top octet
	DefaultMask          = 0xff000000
	DefaultTableBase     = 1000

	// Lifetimes travel in units of 4 seconds in a 16-bit field (RFC 6275
	// 6.1.7). A configured lifetime is rounded down to a multiple of 4 s.
	MinLifetime = 4 * time.Second
	// Bounds of the path liveness timers ([[interface]]).
	MinProbeInterval = 10 * time.Millisecond
	MaxProbeInterval = time.Minute
	MaxProbeIdle     = time.Hour
	MaxHoldDown      = 10 * time.Minute
	MaxLifetime      = 65535 * 4 * time.Second // 262140 s
	// MaxRRLifetime caps a correspondent's bindings (RFC 6275
	// MAX_RR_BINDING_LIFETIME).
	MaxRRLifetime = 420 * time.Second

	// MinKeyLen and MaxKeyLen bound an RFC 4285 MN-HA shared key in bytes.
	MinKeyLen = 16
	MaxKeyLen = 64
	// MinSPI: RFC 4285 reserves SPIs 0 to 255.
	MinSPI = 256

	// MaxFileSize bounds a configuration file (real ones are a few KiB).
	MaxFileSize = 1 << 20
)

// Defaults of the data plane and the flow policy (pkg/dataplane and
// pkg/policy take them from here): names of what they make, and where.
const (
	// TunnelDevicePrefix begins every BID's tunnel device: mcoab<BID>.
	TunnelDevicePrefix = "mcoab"
	// DefaultHomeDevice holds the home address on the mobile node.
	DefaultHomeDevice = "mcoa0"
	// DefaultHADevice is the home agent's TUN device.
	DefaultHADevice = "mcoaha0"
	// DefaultHATable holds the home agent's home-address routes (main).
	DefaultHATable = 254
	// DefaultCNDevice is the correspondent's TUN device.
	DefaultCNDevice = "mcoacn0"
	// DefaultCNTable holds the correspondent's home-address routes.
	DefaultCNTable = 900
	// DefaultCNRulePriority is the first of the correspondent's three ip
	// rules.
	DefaultCNRulePriority = 5000
	// DefaultRulePriority is the first of the mobile node's policy ip
	// rules, which take it to DefaultRulePriority+99.
	DefaultRulePriority = 5100
	// DefaultNFTable is the mobile node's nftables table (family ip6).
	DefaultNFTable = "mcoad"
	// RuleProtocol tags every ip rule mcoad installs (FRA_PROTOCOL): 'M'.
	RuleProtocol = 0x4d
	// DefaultBPFDir is where the eBPF backend pins what a restart keeps.
	DefaultBPFDir = "/sys/fs/bpf/mcoad"
	// EthernetMTU is the path MTU the TUN devices' MTUs default from
	// (less what each adds to a packet).
	EthernetMTU = 1500
)

// MN is the configuration of mcoad.
type MN struct {
	MobileNode     MobileNode      // [mobile_node]
	Interfaces     []Interface     // [[interface]], in file order: first match wins
	Correspondents []Correspondent // [[correspondent]]
	Policies       []Policy        // [[policy]], in file order
	Dataplane      Dataplane       // [dataplane]
	Control        Control         // [control]
	Log            Log             // [log]
	MobileRouter   MobileRouter    // [mobile_router] (NEMO, RFC 3963)
}

// MobileNode is [mobile_node].
type MobileNode struct {
	HomeAddress   netip.Addr    // home_address (required)
	HomeAgent     netip.Addr    // home_agent (required)
	HomePrefix    netip.Prefix  // home_prefix (required), contains HomeAddress
	Lifetime      time.Duration // lifetime: requested, a multiple of 4 s in [4 s, 262140 s]
	BIDMode       BIDMode       // bid_mode
	Registration  Registration  // registration
	Profile       string        // profile: a name proto.ProfileByName knows
	BIDOptionType uint8         // bid_option_type
	StateDir      string        // state_dir: absolute path
	ReturnHome    ReturnHome    // return_home
	// DeregisterOnStop: deregister_on_stop; de-register all bindings when
	// the daemon stops (default true). False leaves them to expire, so a
	// restart does not interrupt traffic.
	DeregisterOnStop bool
	// MNHASPI and MNHAKey: mnha_spi, mnha_key; RFC 4285 MN-HA
	// authentication. SPI 0 (and an empty key) means not configured; the
	// two are set together.
	MNHASPI uint32
	MNHAKey Secret
	// AllowDeprecated: allow_deprecated; use deprecated addresses as
	// care-of addresses (RFC 4862 preferred lifetime 0) when nothing else
	// is left on an interface.
	AllowDeprecated bool
	// Liveness: liveness; watch every path to the home agent and withdraw
	// a dead one's binding (default true).
	Liveness bool
}

// WireProfile returns the wire profile the configuration names (never an
// error for a validated configuration).
func (m MobileNode) WireProfile() (*proto.Profile, error) {
	return proto.ProfileByName(m.Profile, m.BIDOptionType)
}

// BIDMode is how BIDs are assigned.
type BIDMode string

const (
	BIDPerInterface BIDMode = "interface" // one BID per interface (default)
	BIDPerCoA       BIDMode = "coa"       // one BID per care-of address
)

// Registration is how bindings are registered with the home agent.
type Registration string

const (
	RegBulk       Registration = "bulk"       // all bindings in one BU (default)
	RegIndividual Registration = "individual" // one BU per binding
)

// ReturnHome is what the MN does when one interface attaches to the home
// link (draft section 3.3).
type ReturnHome string

const (
	// ReturnHomeAll de-registers every binding (default).
	ReturnHomeAll ReturnHome = "all"
	// ReturnHomeKeepForeign keeps the bindings of interfaces on foreign
	// links and de-registers only the home-link interface's binding.
	ReturnHomeKeepForeign ReturnHome = "keep-foreign"
)

// Interface is one [[interface]] rule; the first rule whose Match matches
// an interface name applies. With no rules, every interface is used with
// priority 0 and an automatic BID.
type Interface struct {
	Match   string // match: path.Match pattern on the interface name (required)
	Exclude bool   // exclude: never use matching interfaces
	// Priority: priority; the BID sub-option's priority, 0 = no priority,
	// higher is preferred (draft 4.3.1). Default 0.
	Priority uint8
	// MeteredPriority: metered_priority; used instead of Priority while
	// the interface is metered (NetworkManager). Defaults to Priority.
	MeteredPriority uint8
	// BID: bid; a fixed BID (1..65535) for the interface, 0 = assigned
	// automatically. Only with bid_mode = "interface".
	BID uint16
	// Path liveness timers (pkg/liveness); zero: the defaults for a
	// metered or unmetered link. probe_interval: between probes while the
	// path is checked, and the silence that makes a receiving path
	// checked; probe_idle: keepalive of an idle path; probe_multiplier:
	// unanswered probes in a row that make it dead; hold_down: how long a
	// dead path must answer before it is used again.
	ProbeInterval   time.Duration
	ProbeIdle       time.Duration
	ProbeMultiplier int
	HoldDown        time.Duration
}

// Correspondent is one [[correspondent]].
type Correspondent struct {
	Address           netip.Addr // address (required)
	RouteOptimization bool       // route_optimization (default true)
}

// Policy is one [[policy]]: flows that match go out through the first
// available entry of Prefer.
type Policy struct {
	Name      string       // name (required, unique)
	Protocol  Protocol     // protocol (default any)
	SrcPrefix netip.Prefix // src_prefix; invalid (zero) = any
	DstPrefix netip.Prefix // dst_prefix; invalid (zero) = any
	SrcPort   PortRange    // src_port: "N" or "lo-hi"; zero = any; tcp or udp only
	DstPort   PortRange    // dst_port
	User      string       // user: a user name or uid; "" = any
	Cgroup    string       // cgroup: a cgroup v2 path; "" = any
	Prefer    []Preference // prefer (required, non-empty)
}

// Equal reports whether p and q are the same policy.
func (p Policy) Equal(q Policy) bool {
	return p.Name == q.Name && p.Protocol == q.Protocol && p.SrcPrefix == q.SrcPrefix &&
		p.DstPrefix == q.DstPrefix && p.SrcPort == q.SrcPort && p.DstPort == q.DstPort &&
		p.User == q.User && p.Cgroup == q.Cgroup && slices.Equal(p.Prefer, q.Prefer)
}

// Protocol is a policy's transport protocol.
type Protocol string

const (
	ProtoAny    Protocol = "any"
	ProtoTCP    Protocol = "tcp"
	ProtoUDP    Protocol = "udp"
	ProtoICMPv6 Protocol = "icmpv6"
)

// Number returns the IP protocol number, 0 for any.
func (p Protocol) Number() uint8 {
	switch p {
	case ProtoTCP:
		return 6
	case ProtoUDP:
		return 17
	case ProtoICMPv6:
		return 58
	}
	return 0
}

// PortRange is an inclusive port range; the zero value means any port.
type PortRange struct{ Lo, Hi uint16 }

// IsZero reports whether r means any port.
func (r PortRange) IsZero() bool { return r == PortRange{} }

// Contains reports whether port is in r (always true for the zero range).
func (r PortRange) Contains(port uint16) bool {
	return r.IsZero() || r.Lo <= port && port <= r.Hi
}

func (r PortRange) String() string {
	switch {
	case r.IsZero():
		return "any"
	case r.Lo == r.Hi:
		return strconv.Itoa(int(r.Lo))
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// Preference is one entry of a policy's prefer list: an interface pattern
// or, written "bid:N", a BID.
type Preference struct {
	Interface string // path.Match pattern; "" when BID is set
	BID       uint16
}

func (p Preference) String() string {
	if p.BID != 0 {
		return "bid:" + strconv.Itoa(int(p.BID))
	}
	return p.Interface
}

// Dataplane is [dataplane] of either daemon.
type Dataplane struct {
	Backend Backend // backend (default auto)
	// Mark and Mask: mark, mask; Mask selects the fwmark bits mcoad owns
	// and Mark, which lies inside Mask, is the base of the values it
	// sets. Other software's marks must stay outside Mask.
	Mark, Mask uint32
	// TableBase: table_base; the routing table of BID b is TableBase + b
	// (at least 256, clear of the kernel's tables 253 to 255).
	TableBase uint32
	// BPFDir: bpf_dir, a directory on a bpffs (mounted at /sys/fs/bpf when
	// it is under it and none is) where the eBPF backend pins what a
	// restart keeps; one per mcoad sharing a kernel.
	BPFDir string
}

// Backend selects the data plane implementation.
type Backend string

const (
	BackendAuto   Backend = "auto"   // kernel where ip6tnl exists, else tun
	BackendTUN    Backend = "tun"    // userspace over TUN
	BackendKernel Backend = "kernel" // ip6tnl via netlink
	BackendEBPF   Backend = "ebpf"   // LWT and tc BPF programs, no tunnel devices
	BackendNone   Backend = "none"   // signaling only: no tunnels, marks or rules
)

// Control is [control] of either daemon.
type Control struct {
	Socket string // socket: absolute path of the unix socket
	// Group: group; members may use mutating calls (besides root). ""
	// means root only.
	Group string
	// MetricsAddress: metrics_address, a TCP address ("[::1]:9477") where
	// GET /metrics is served read-only besides the control socket; ""
	// means none.
	MetricsAddress string
}

// Log is [log].
type Log struct {
	Level slog.Level // level: "debug", "info" (default), "warn" or "error"
	// Format: format, LogText (default) or LogJSON; applies on restart.
	Format string
}

// Log formats.
const (
	LogText = "text"
	LogJSON = "json"
)

// MobileRouter is [mobile_router]: NEMO (RFC 3963) mobile network
// prefixes.
type MobileRouter struct {
	Enabled  bool           // enabled
	Prefixes []netip.Prefix // prefixes: required when enabled; disjoint from home_prefix and each other
	// Mode: mode; explicit (default) lists the prefixes in the BU as
	// Mobile Network Prefix options, implicit lets the HA use its own list
	// (RFC 3963 section 5.1).
	Mode NEMOMode
	// Ingress: ingress; the interfaces the mobile networks live on.
	Ingress []string
}

// NEMOMode is a NEMO registration mode (RFC 3963 section 5.1).
type NEMOMode string

const (
	NEMOExplicit NEMOMode = "explicit"
	NEMOImplicit NEMOMode = "implicit"
)

// HA is the configuration of mcoa-ha.
type HA struct {
	HomeAgent     HomeAgent   // [home_agent]; optional with [correspondent] enabled (see HomeAgentRole)
	Correspondent CNResponder // [correspondent]
	Dataplane     Dataplane   // [dataplane]
	Control       Control     // [control]
	Log           Log         // [log]
}

// HomeAgent is [home_agent].
type HomeAgent struct {
	Address    netip.Addr   // address (required), inside HomePrefix
	Interface  string       // interface (required): the home link
	HomePrefix netip.Prefix // home_prefix (required)
	// Serve: serve; home addresses it accepts BUs for. Defaults to
	// [HomePrefix].
	Serve []netip.Prefix
	// BulkRegistration: bulk_registration (default true); false answers
	// bulk BUs with status BULK REGISTRATION NOT SUPPORT.
	BulkRegistration bool
	MaxLifetime      time.Duration // max_lifetime: granted lifetimes are capped to it; multiple of 4 s
	Profile          string        // profile
	BIDOptionType    uint8         // bid_option_type
	// RequireAuth: refuse BUs for home addresses that have no
	// [[home_agent.mn]] entry with a key. Default true; false by
	// allow_unauthenticated = true (or require_auth = false).
	RequireAuth bool
	MNs         []HAMobileNode // [[home_agent.mn]]
	// StateDir: state_dir, an absolute path (default DefaultHAStateDir);
	// the binding cache is kept there so that a restart or crash does
	// not cut the mobile nodes off.
	StateDir string
}

// WireProfile returns the wire profile the configuration names.
func (h HomeAgent) WireProfile() (*proto.Profile, error) {
	return proto.ProfileByName(h.Profile, h.BIDOptionType)
}

// HAMobileNode is one [[home_agent.mn]]: a mobile node the HA knows.
type HAMobileNode struct {
	HomeAddress netip.Addr // home_address (required, unique, inside a serve prefix)
	// SPI and Key: spi, key; RFC 4285 MN-HA authentication, set together
	// (SPI 0 = none).
	SPI uint32
	Key Secret
	// Prefixes: prefixes; NEMO mobile network prefixes this MN may
	// register as a mobile router (RFC 3963). Empty: not a mobile router.
	Prefixes []netip.Prefix
}

// Equal reports whether m and n are the same entry.
func (m HAMobileNode) Equal(n HAMobileNode) bool {
	return m.HomeAddress == n.HomeAddress && m.SPI == n.SPI && m.Key == n.Key && slices.Equal(m.Prefixes, n.Prefixes)
}

// HomeAgentRole reports whether mcoa-ha runs as a home agent: it does when
// the file has a [home_agent] section. Without one, HomeAgent holds only
// defaults and the correspondent is the only role.
func (c *HA) HomeAgentRole() bool { return c.HomeAgent.Address.IsValid() }

// WireProfile returns the wire profile the daemon uses for both roles:
// [home_agent]'s, or [correspondent]'s for a correspondent node alone.
func (c *HA) WireProfile() (*proto.Profile, error) {
	if c.HomeAgentRole() {
		return c.HomeAgent.WireProfile()
	}
	return proto.ProfileByName(c.Correspondent.Profile, c.Correspondent.BIDOptionType)
}

// CNResponder is mcoa-ha's [correspondent]: answering return routability
// and BUs as a correspondent node. With no [home_agent] it is the only
// role (enabled must be true and address is required).
type CNResponder struct {
	Enabled bool // enabled (default false)
	// Addresses: address, one address or an array of them; the
	// correspondent answers HoTI, CoTI and BUs sent to these only. Default
	// (with a home agent): [HomeAgent.Address].
	Addresses []netip.Addr
	// MaxLifetime: max_lifetime, at most MaxRRLifetime; multiple of 4 s.
	// Default: home_agent.max_lifetime capped to MaxRRLifetime, or
	// MaxRRLifetime.
	MaxLifetime time.Duration
	// Profile and BIDOptionType: profile, bid_option_type. Only a
	// correspondent node alone sets them; with a home agent one socket
	// serves both roles and they are [home_agent]'s.
	Profile       string
	BIDOptionType uint8
}

// Equal reports whether c and d are the same [correspondent].
func (c CNResponder) Equal(d CNResponder) bool {
	return c.Enabled == d.Enabled && slices.Equal(c.Addresses, d.Addresses) && c.MaxLifetime == d.MaxLifetime &&
		c.Profile == d.Profile && c.BIDOptionType == d.BIDOptionType
}

// Secret is key material. It is a string so that the structs holding it
// stay comparable; it prints, logs and marshals redacted.
type Secret string

// Bytes returns the key.
func (s Secret) Bytes() []byte { return []byte(s) }

func (s Secret) String() string {
	if s == "" {
		return "<none>"
	}
	return fmt.Sprintf("<%d-byte key>", len(s))
}

// GoString keeps %#v from printing the key.
func (s Secret) GoString() string { return s.String() }

// MarshalText keeps encoding/json and friends from printing the key.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue keeps log/slog from printing the key.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
