package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"

	"github.com/mcoad/mcoad/pkg/config"
)

// Errors callers may test for with errors.Is.
var (
	// ErrInvalid marks a bad Tunnel, HABinding or Config.
	ErrInvalid = errors.New("dataplane: invalid")
	// ErrUnavailable means the chosen backend cannot run here (no
	// ip6_tunnel for "kernel", not Linux, no /dev/net/tun).
	ErrUnavailable = errors.New("dataplane: backend unavailable")
	// ErrClosed is returned by calls on a closed backend or HA plane.
	ErrClosed = errors.New("dataplane: closed")
)

// Backend names of Config.Backend (the [dataplane] backend key).
const (
	BackendAuto = "auto" // the first driver that runs here (package backends)
	BackendNone = "none" // signaling only: SetTunnels does nothing
)

// Tunnel is one registered binding of the mobile node: packets from the home
// address that policy routes into BID's table leave as IPv6-in-IPv6 from
// CoA, out of Iface, to HA.
type Tunnel struct {
	BID     uint16 // 1..65535 (0 is reserved by the draft)
	Iface   string // interface the CoA is on; resolved from Ifindex if empty
	Ifindex int    // resolved from Iface if 0
	CoA     netip.Addr
	HA      netip.Addr
	HoA     netip.Addr // the same for every tunnel of a SetTunnels call
	// MTU of the tunnel (the inner packets). 0: the interface's MTU less
	// the 40 bytes of the outer header (never below 1280).
	MTU int
}

func (t Tunnel) String() string {
	return fmt.Sprintf("bid %d %s via %s(%d) -> %s hoa %s mtu %d", t.BID, t.CoA, t.Iface, t.Ifindex, t.HA, t.HoA, t.MTU)
}

// Config chooses and tunes a mobile-node backend. A nil *Config is the
// default.
type Config struct {
	// Backend is "auto" (default), "tun", "kernel" or "none".
	Backend string
	// Mark and Mask are the fwmark bits mcoad owns (pkg/config's [dataplane]
	// mark and mask). The userspace backend sends its outer packets with
	// mark Mark, the value pkg/policy gives no BID: the policy rules must
	// never route it into a tunnel, so tunnelled packets cannot loop.
	Mark, Mask uint32
	// TableBase: BID b's routing table is TableBase+b.
	TableBase uint32
	// HomeDevice holds the home address (default "mcoa0").
	HomeDevice string
	// NoOffload turns off TSO/GRO on the userspace backend's TUN devices
	// (one packet per read and write).
	NoOffload bool
	// MobileNetworks are a mobile router's mobile network prefixes (NEMO,
	// RFC 3963): packets from them enter the tunnels like the home
	// address's, and packets to them coming out of the tunnels are handed
	// to the kernel to forward. nil: a mobile host.
	MobileNetworks []netip.Prefix
	// Adopt are the tunnels a previous process kept for a restart
	// (Keeper): the userspace backend attaches to their devices and to
	// the home device in New and carries their packets from then on,
	// before the first SetTunnels (which removes those not wanted). A
	// kept device that cannot be adopted is deleted.
	Adopt []Tunnel
	// BPFDir is a directory on a bpffs where the eBPF backend pins its
	// maps and tc links for a restart (Keeper), and finds them again
	// (default config.DefaultBPFDir).
	BPFDir string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Resolve returns c with its defaults filled in, checked (ErrInvalid);
// the backend name is checked where the backends are known (package
// backends). A nil *Config is the default.
func (c *Config) Resolve() (Config, error) {
	out := c.withDefaults()
	return out, out.validate()
}

func (c *Config) withDefaults() Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.Backend == "" {
		out.Backend = BackendAuto
	}
	if out.Mark == 0 && out.Mask == 0 {
		out.Mark, out.Mask = config.DefaultMark, config.DefaultMask
	}
	if out.TableBase == 0 {
		out.TableBase = config.DefaultTableBase
	}
	if out.HomeDevice == "" {
		out.HomeDevice = config.DefaultHomeDevice
	}
	if out.BPFDir == "" {
		out.BPFDir = config.DefaultBPFDir
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out
}

func (c *Config) validate() error {
	if c.Mark&^c.Mask != 0 {
		return fmt.Errorf("%w config: mark %#x outside mask %#x", ErrInvalid, c.Mark, c.Mask)
	}
	if c.TableBase < 256 || uint64(c.TableBase)+0xffff > 0xffffffff {
		return fmt.Errorf("%w config: table base %d (want 256 .. 2^32-65536)", ErrInvalid, c.TableBase)
	}
	if len(c.HomeDevice) > 15 || c.HomeDevice == "" {
		return fmt.Errorf("%w config: home device name %q", ErrInvalid, c.HomeDevice)
	}
	return checkMobileNets(c.MobileNetworks)
}

// Backend is the mobile node's tunnel data plane. SetTunnels is
// level-triggered: it is handed the whole desired set and reconciles the
// devices, sockets and routes to it (an empty set removes every tunnel and
// the home address).
type Backend interface {
	SetTunnels(ctx context.Context, tunnels []Tunnel) error
	// Stats returns a snapshot of the counters.
	Stats() Stats
	// Name is the backend in use: "tun", "kernel" or "none".
	Name() string
	Close() error
}

// Keeper is a Backend that can stop for a restart without removing its
// tunnels: Keep ends it like Close, but its devices (persistent), their
// routes and the home address stay for the next process to adopt
// (Config.Adopt), and no one reads or writes them in between. It returns
// the tunnels kept (none: everything was removed as by Close).
type Keeper interface {
	Keep() ([]Tunnel, error)
}

// Entrances is implemented by a backend without a device per tunnel (the
// eBPF one): it reports the tunnels that carry packets now, by BID, with
// the name status shows for each (the uplink the encapsulated packets
// leave by). A packet from the home address enters such a tunnel by its
// BID's fwmark (pkg/policy), which routes it into the BID's table. The
// other backends' tunnels are their DeviceName devices.
type Entrances interface {
	Entrances() map[uint16]string
}

// DeviceName is the name of BID's tunnel device in either backend.
func DeviceName(bid uint16) string { return config.TunnelDevicePrefix + strconv.Itoa(int(bid)) }

// Table is BID's routing table: its default route points into BID's
// tunnel device with the home address as preferred source.
func (c *Config) Table(bid uint16) uint32 {
	base := c.TableBase
	if base == 0 {
		base = config.DefaultTableBase
	}
	return base + uint32(bid)
}

// Counters count one tunnel's packets (inner sizes).
type Counters struct {
	TxPackets, TxBytes uint64 // encapsulated and sent
	RxPackets, RxBytes uint64 // received and decapsulated
	TxErrors           uint64 // send failures (link down, no route)
}

// Drops counts packets refused by a data plane, by reason.
type Drops struct {
	Malformed uint64 // not an IPv6 packet, truncated, bad outer header
	NotHome   uint64 // inner source (outbound) or destination (inbound) is not a home address
	Unknown   uint64 // outer addresses match no tunnel or binding
	NoBinding uint64 // HA: a home address without bindings
	Spoofed   uint64 // HA: inner source is not the home address of the CoA's binding
	TooBig    uint64 // larger than the tunnel MTU; a Packet Too Big went back
	WriteErr  uint64 // writing into the TUN device failed
}

// Stats is a snapshot of a data plane's counters; Tunnels is keyed by BID
// (on the home agent by BID within all home addresses).
type Stats struct {
	Tunnels map[uint16]Counters
	Drops   Drops
}

// NormalizeTunnels checks a SetTunnels set and returns it sorted by BID,
// with interfaces resolved and MTUs filled in by lookup (name or index to
// name, index, MTU). A bad set is refused whole (ErrInvalid); a tunnel whose
// interface cannot be resolved is left out, and the others still apply, so
// a vanished interface takes only its own tunnel down: its error comes back
// in lookupErr.
func NormalizeTunnels(in []Tunnel, lookup func(name string, index int) (string, int, int, error)) (out []Tunnel, lookupErr error, err error) {
	out = slices.Clone(in)
	slices.SortFunc(out, func(a, b Tunnel) int { return int(a.BID) - int(b.BID) })
	for i := range out {
		t := &out[i]
		bad := func(why string, args ...any) error {
			return fmt.Errorf("%w tunnel (bid %d): %s", ErrInvalid, t.BID, fmt.Sprintf(why, args...))
		}
		if t.BID == 0 {
			return nil, nil, bad("BID 0 is reserved")
		}
		if i > 0 && out[i-1].BID == t.BID {
			return nil, nil, bad("BID given twice")
		}
		for _, a := range []struct {
			name string
			addr netip.Addr
		}{{"CoA", t.CoA}, {"HA", t.HA}, {"HoA", t.HoA}} {
			if !a.addr.Is6() || a.addr.Is4In6() || a.addr.IsUnspecified() || a.addr.IsMulticast() || a.addr.IsLoopback() || a.addr.Zone() != "" {
				return nil, nil, bad("%s %v is not a unicast IPv6 address", a.name, a.addr)
			}
		}
		if t.HoA != out[0].HoA {
			return nil, nil, bad("home address %s differs from %s (one home address per mobile node)", t.HoA, out[0].HoA)
		}
		if t.Iface == "" && t.Ifindex <= 0 {
			return nil, nil, bad("no interface")
		}
		if t.MTU != 0 && (t.MTU < MinMTU || t.MTU > MaxPacket-IPv6HeaderLen) {
			return nil, nil, bad("MTU %d out of range %d..%d", t.MTU, MinMTU, MaxPacket-IPv6HeaderLen)
		}
	}
	if lookup == nil {
		return out, nil, nil
	}
	var errs []error
	kept := out[:0]
	for _, t := range out {
		name, index, mtu, err := lookup(t.Iface, t.Ifindex)
		if err == nil && ((t.Iface != "" && name != t.Iface) || (t.Ifindex > 0 && index != t.Ifindex)) {
			err = fmt.Errorf("%w: interface %q and index %d disagree", ErrInvalid, t.Iface, t.Ifindex)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("tunnel (bid %d): interface %q (%d): %w", t.BID, t.Iface, t.Ifindex, err))
			continue
		}
		t.Iface, t.Ifindex = name, index
		if t.MTU == 0 {
			t.MTU = max(mtu-IPv6HeaderLen, MinMTU)
		}
		kept = append(kept, t)
	}
	return kept, errors.Join(errs...), nil
}

// CheckOpen is the check every level-triggered setter makes under its
// mutex: ErrClosed after Close, else the context's error.
func CheckOpen(ctx context.Context, closed bool) error {
	if closed {
		return ErrClosed
	}
	return ctx.Err()
}
