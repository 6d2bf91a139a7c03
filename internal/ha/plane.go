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

// HAPlane is what NewPlane adapts: pkg/dataplane/homeagent's Forwarder.
type HAPlane interface {
	SetBindings(ctx context.Context, bs []dataplane.HABinding) error
}

// NewPlane makes a Plane of pkg/dataplane/homeagent's Forwarder: the home
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
func PlaneMetrics(st dataplane.BindingStats) []control.Metric {
	tx, rx := bindingMetrics(st,
		control.Metric{Name: "mcoa_ha_tunnel_tx_packets_total", Help: "Packets tunnelled to a binding.", Type: "counter"},
		control.Metric{Name: "mcoa_ha_tunnel_rx_packets_total", Help: "Packets received through a binding's tunnel and forwarded.", Type: "counter"})
	d := st.Drops
	drops := dropsMetric("mcoa_ha_dataplane_drops_total", "Packets the data plane dropped, by reason.",
		reasonCount{"malformed", d.Malformed}, reasonCount{"not_home", d.NotHome}, reasonCount{"unknown", d.Unknown},
		reasonCount{"no_binding", d.NoBinding}, reasonCount{"spoofed", d.Spoofed}, reasonCount{"too_big", d.TooBig},
		reasonCount{"write_error", d.WriteErr})
	return []control.Metric{tx, rx, drops}
}

type reasonCount struct {
	reason string
	n      uint64
}

// dropsMetric is a counter with one sample per drop reason.
func dropsMetric(name, help string, rs ...reasonCount) control.Metric {
	m := control.Metric{Name: name, Help: help, Type: "counter"}
	for _, r := range rs {
		m.Samples = append(m.Samples, control.Sample{Labels: map[string]string{"reason": r.reason}, Value: float64(r.n)})
	}
	return m
}

// bindingMetrics fills tx and rx with one sample per binding of st, in
// home address and BID order: the per-binding counters of both the home
// agent's and the correspondent's data planes.
func bindingMetrics(st dataplane.BindingStats, tx, rx control.Metric) (control.Metric, control.Metric) {
	keys := make([]dataplane.BindingKey, 0, len(st.Bindings))
	for k := range st.Bindings {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b dataplane.BindingKey) int {
		if c := a.HoA.Compare(b.HoA); c != 0 {
			return c
		}
		return int(a.BID) - int(b.BID)
	})
	for _, k := range keys {
		c := st.Bindings[k]
		l := map[string]string{"hoa": k.HoA.String(), "bid": strconv.Itoa(int(k.BID))}
		tx.Samples = append(tx.Samples, control.Sample{Labels: l, Value: float64(c.TxPackets)})
		rx.Samples = append(rx.Samples, control.Sample{Labels: l, Value: float64(c.RxPackets)})
	}
	return tx, rx
}
