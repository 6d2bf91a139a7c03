package correspondent

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/routeopt"
)

// Binding is one binding of a correspondent node's cache: packets from
// the correspondent's own stack to HoA may go to CoA with a type 2 routing
// header, and packets from CoA to Local with a Home Address option holding
// HoA are accepted as coming from HoA.
type Binding struct {
	HoA      netip.Addr
	BID      uint16 // 0 for a binding without BID
	CoA      netip.Addr
	Priority uint8 // the draft's priority: higher is preferred
	// Local is the correspondent's address the binding was registered
	// with (the destination of the BU).
	Local netip.Addr
}

func checkBindings(in []Binding) ([]Binding, error) {
	key := func(b Binding) dataplane.BindingKey { return dataplane.BindingKey{HoA: b.HoA, BID: b.BID} }
	return dataplane.CheckBindingSet(in, key, "correspondent binding", func(b Binding) error {
		for _, a := range []netip.Addr{b.HoA, b.CoA, b.Local} {
			if !dataplane.Unicast6(a) {
				return fmt.Errorf("%v is not a unicast IPv6 address", a)
			}
		}
		return nil
	})
}

// Config configures a correspondent node's data plane. A nil *Config
// is the default.
type Config struct {
	// Device is the TUN device that home-address routes point to
	// (default "mcoacn0").
	Device string
	// MTU of Device (default 1476: an Ethernet path less the type 2
	// routing header).
	MTU int
	// Table for the home-address routes (default 900), which only
	// packets of this node's own stack look up.
	Table int
	// RulePriority P: rules P (fwmark Mark goto P+2), P+1 (iif lo lookup
	// Table) and P+2 (nop). Default 5000.
	RulePriority int
	// Mark is set on the packets the plane sends; packets with it skip
	// Table (default config.DefaultMark).
	Mark uint32
	// NoOffload: see Config.
	NoOffload bool
	// BindingError is called for a packet with a Home Address option
	// that no binding covers, addressed to this node, at most ten times
	// a second and from a goroutine of the plane's: the caller answers it
	// with a Binding Error status 1 (RFC 6275 9.3.1, draft 6.5).
	BindingError func(src, dst, hoa netip.Addr)
	Logger       *slog.Logger
}

func (c *Config) withDefaults() (Config, error) {
	var out Config
	if c != nil {
		out = *c
	}
	if err := dataplane.DeviceDefaults("correspondent", &out.Device, config.DefaultCNDevice, &out.MTU, routeopt.ExtLen); err != nil {
		return out, err
	}
	if out.Table == 0 {
		out.Table = config.DefaultCNTable
	}
	if out.Table < 0 || out.Table == 253 || out.Table == 254 || out.Table == 255 {
		return out, fmt.Errorf("%w correspondent config: table %d", dataplane.ErrInvalid, out.Table)
	}
	if out.RulePriority == 0 {
		out.RulePriority = config.DefaultCNRulePriority
	}
	if out.RulePriority < 1 || out.RulePriority > 32700 {
		return out, fmt.Errorf("%w correspondent config: rule priority %d", dataplane.ErrInvalid, out.RulePriority)
	}
	if out.Mark == 0 {
		out.Mark = config.DefaultMark
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out, nil
}
