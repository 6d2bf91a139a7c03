package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
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
	BackendAuto   = "auto"   // kernel where ip6_tunnel exists, else tun
	BackendTUN    = "tun"    // userspace over TUN
	BackendKernel = "kernel" // ip6tnl links via netlink
	BackendNone   = "none"   // signaling only: SetTunnels does nothing
)

// Defaults of Config (the same numbers as pkg/config's).
const (
	DefaultMark      = 0x4d000000
	DefaultMask      = 0xff000000
	DefaultTableBase = 1000
	// DefaultHomeDevice holds the home address on the mobile node.
	DefaultHomeDevice = "mcoa0"
	// DefaultHADevice is the home agent's TUN device.
	DefaultHADevice = "mcoaha0"
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
	// Logger; default slog.Default().
	Logger *slog.Logger
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
		out.Mark, out.Mask = DefaultMark, DefaultMask
	}
	if out.TableBase == 0 {
		out.TableBase = DefaultTableBase
	}
	if out.HomeDevice == "" {
		out.HomeDevice = DefaultHomeDevice
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out
}

func (c *Config) validate() error {
	switch c.Backend {
	case BackendAuto, BackendTUN, BackendKernel, BackendNone:
	default:
		return fmt.Errorf("%w config: backend %q (want auto, tun, kernel or none)", ErrInvalid, c.Backend)
	}
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

// DeviceName is the name of BID's tunnel device in either backend.
func DeviceName(bid uint16) string { return "mcoab" + strconv.Itoa(int(bid)) }

// Table is BID's routing table: its default route points into BID's
// tunnel device with the home address as preferred source.
func (c *Config) Table(bid uint16) uint32 {
	base := c.TableBase
	if base == 0 {
		base = DefaultTableBase
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

// normalizeTunnels checks a SetTunnels set and returns it sorted by BID,
// with interfaces resolved and MTUs filled in by lookup (name or index to
// name, index, MTU). A bad set is refused whole (ErrInvalid); a tunnel whose
// interface cannot be resolved is left out, and the others still apply, so
// a vanished interface takes only its own tunnel down: its error comes back
// in lookupErr.
func normalizeTunnels(in []Tunnel, lookup func(name string, index int) (string, int, int, error)) (out []Tunnel, lookupErr error, err error) {
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
		if t.MTU != 0 && (t.MTU < minMTU || t.MTU > maxPacket-ipv6HeaderLen) {
			return nil, nil, bad("MTU %d out of range %d..%d", t.MTU, minMTU, maxPacket-ipv6HeaderLen)
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
			t.MTU = max(mtu-ipv6HeaderLen, minMTU)
		}
		kept = append(kept, t)
	}
	return kept, errors.Join(errs...), nil
}

// HABinding is one binding of the home agent's cache that has a tunnel:
// packets for HoA go to CoA.
type HABinding struct {
	HoA      netip.Addr
	BID      uint16 // 0 for a binding without BID
	CoA      netip.Addr
	Priority uint8 // the draft's priority: higher is preferred, 0 none
	// Prefixes are the mobile network prefixes of HoA's mobile router
	// (NEMO, RFC 3963): routed into the tunnel like HoA, and accepted as
	// inner sources from it. Every binding of a HoA carries the same list.
	Prefixes []netip.Prefix
}

// HAConfig configures the home agent's data plane. Address is required.
type HAConfig struct {
	// Address is the home agent's address: the outer source of tunnelled
	// packets, and the only outer destination accepted.
	Address netip.Addr
	// Device is the TUN device that home-address routes point to (default
	// "mcoaha0").
	Device string
	// MTU of Device (default 1460: an Ethernet path less the outer header).
	MTU int
	// Table for the home-address routes (default 254, main).
	Table int
	// Mark is set on outer packets (0: none).
	Mark uint32
	// NoOffload: see Config.
	NoOffload bool
	Logger    *slog.Logger
}

func (c *HAConfig) withDefaults() (HAConfig, error) {
	var out HAConfig
	if c != nil {
		out = *c
	}
	if !out.Address.Is6() || out.Address.Is4In6() || out.Address.IsUnspecified() || out.Address.IsMulticast() {
		return out, fmt.Errorf("%w HA config: address %v is not a unicast IPv6 address", ErrInvalid, out.Address)
	}
	if err := deviceDefaults("HA", &out.Device, DefaultHADevice, &out.MTU, ipv6HeaderLen); err != nil {
		return out, err
	}
	if out.Table == 0 {
		out.Table = 254
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out, nil
}

// deviceDefaults fills in the TUN device name and MTU of a plane's config
// and checks them: the MTU defaults to an Ethernet path less overhead, the
// header the plane adds. what names the config in errors.
func deviceDefaults(what string, dev *string, defDev string, mtu *int, overhead int) error {
	if *dev == "" {
		*dev = defDev
	}
	if len(*dev) > 15 {
		return fmt.Errorf("%w %s config: device name %q too long", ErrInvalid, what, *dev)
	}
	if *mtu == 0 {
		*mtu = 1500 - overhead
	}
	if *mtu < minMTU || *mtu > maxPacket-overhead {
		return fmt.Errorf("%w %s config: MTU %d", ErrInvalid, what, *mtu)
	}
	return nil
}

func checkHABindings(in []HABinding) ([]HABinding, error) {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b HABinding) int {
		if c := a.HoA.Compare(b.HoA); c != 0 {
			return c
		}
		return int(a.BID) - int(b.BID)
	})
	for i, b := range out {
		for _, a := range []netip.Addr{b.HoA, b.CoA} {
			if !unicast6(a) {
				return nil, fmt.Errorf("%w binding %s bid %d: %v is not a unicast IPv6 address", ErrInvalid, b.HoA, b.BID, a)
			}
		}
		for _, pf := range b.Prefixes {
			if !pf.IsValid() || !pf.Addr().Is6() || pf.Addr().Is4In6() || pf.Masked() != pf || pf.Contains(b.HoA) {
				return nil, fmt.Errorf("%w binding %s bid %d: %v is not a mobile network prefix", ErrInvalid, b.HoA, b.BID, pf)
			}
		}
		if i > 0 && out[i-1].HoA == b.HoA && out[i-1].BID == b.BID {
			return nil, fmt.Errorf("%w binding %s bid %d given twice", ErrInvalid, b.HoA, b.BID)
		}
	}
	return out, nil
}

// checkOpen is the check every level-triggered setter makes under its
// mutex: ErrClosed after Close, else the context's error.
func checkOpen(ctx context.Context, closed bool) error {
	if closed {
		return ErrClosed
	}
	return ctx.Err()
}

// noneBackend is "none": signaling only, no tunnels.
type noneBackend struct{}

func (noneBackend) SetTunnels(ctx context.Context, tunnels []Tunnel) error {
	_, _, err := normalizeTunnels(tunnels, nil)
	return err
}
func (noneBackend) Stats() Stats { return Stats{Tunnels: map[uint16]Counters{}} }
func (noneBackend) Name() string { return BackendNone }
func (noneBackend) Close() error { return nil }
