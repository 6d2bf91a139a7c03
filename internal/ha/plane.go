package ha

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

// planeTimeout bounds one update of the data plane (a few netlink calls).
const planeTimeout = 5 * time.Second

// HAPlane is what NewPlane adapts: pkg/dataplane's home-agent side.
type HAPlane interface {
	SetBindings(ctx context.Context, bs []dataplane.HABinding) error
}

// NewPlane makes a Plane of pkg/dataplane's home-agent side: the home
// registrations of the cache become its tunnelled bindings.
func NewPlane(p HAPlane) Plane { return planeAdapter{p: p} }

type planeAdapter struct{ p HAPlane }

func (a planeAdapter) SetBindings(bs []bcache.Binding) error {
	out := make([]dataplane.HABinding, 0, len(bs))
	for _, b := range bs {
		if !b.HomeRegistration {
			continue // a correspondent's binding: route optimisation, no tunnel
		}
		out = append(out, dataplane.HABinding{HoA: b.HoA, BID: b.BID, CoA: b.CoA, Priority: b.Priority, Prefixes: b.Prefixes})
	}
	ctx, cancel := context.WithTimeout(context.Background(), planeTimeout)
	defer cancel()
	return a.p.SetBindings(ctx, out)
}

// PlaneMetrics are the home agent's tunnel counters, per binding, and the
// packets its data plane dropped, by reason (GET /metrics).
func PlaneMetrics(st dataplane.HAStats) []control.Metric {
	keys := make([]dataplane.HAKey, 0, len(st.Bindings))
	for k := range st.Bindings {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b dataplane.HAKey) int {
		if c := a.HoA.Compare(b.HoA); c != 0 {
			return c
		}
		return int(a.BID) - int(b.BID)
	})
	tx := control.Metric{Name: "mcoa_ha_tunnel_tx_packets_total", Help: "Packets tunnelled to a binding.", Type: "counter"}
	rx := control.Metric{Name: "mcoa_ha_tunnel_rx_packets_total", Help: "Packets received through a binding's tunnel and forwarded.", Type: "counter"}
	for _, k := range keys {
		c := st.Bindings[k]
		l := map[string]string{"hoa": k.HoA.String(), "bid": strconv.Itoa(int(k.BID))}
		tx.Samples = append(tx.Samples, control.Sample{Labels: l, Value: float64(c.TxPackets)})
		rx.Samples = append(rx.Samples, control.Sample{Labels: l, Value: float64(c.RxPackets)})
	}
	d := st.Drops
	drops := control.Metric{Name: "mcoa_ha_dataplane_drops_total", Help: "Packets the data plane dropped, by reason.", Type: "counter"}
	for _, r := range []struct {
		reason string
		n      uint64
	}{{"malformed", d.Malformed}, {"not_home", d.NotHome}, {"unknown", d.Unknown}, {"no_binding", d.NoBinding},
		{"spoofed", d.Spoofed}, {"too_big", d.TooBig}, {"write_error", d.WriteErr}} {
		drops.Samples = append(drops.Samples, control.Sample{Labels: map[string]string{"reason": r.reason}, Value: float64(r.n)})
	}
	return []control.Metric{tx, rx, drops}
}
