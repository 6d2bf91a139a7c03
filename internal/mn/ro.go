package mn

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"

	"github.com/mcoad/mcoad/pkg/bul"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/dataplane"
)

// Route optimisation: the correspondents' bindings in the engine's
// snapshot become the data plane's route-optimised routes
// (dataplane.RouteOptimizer), next to the tunnels and with the same
// level-triggered apply.

// cnKey names a correspondent binding: the correspondent and the BID (0
// for a correspondent without MCoA).
type cnKey struct {
	peer netip.Addr
	bid  uint16
}

// roRoutes is the route-optimised set for tunnels: each correspondent
// binding of snap whose care-of address is that of its tunnel (the
// engine's Entry.TunnelBID: its BID's, or for a correspondent without MCoA
// its care-of address's). A registered binding counts; one being refreshed
// only with the care-of address it had when it was last applied (a refresh
// to a new care-of address is not the correspondent's binding until
// acknowledged).
func (p *dataPath) roRoutes(snap []bul.Entry, tunnels []dataplane.Tunnel) []dataplane.RORoute {
	var out []dataplane.RORoute
	next := map[cnKey]netip.Addr{}
	for _, e := range snap {
		k := cnKey{e.Peer, e.BID}
		ok := e.State == bul.StateRegistered || e.State == bul.StateRefreshing && p.roApplied[k] == e.CoA
		if e.Role != bul.RoleCN || !ok || !e.CoA.IsValid() {
			continue
		}
		i := slices.IndexFunc(tunnels, func(t dataplane.Tunnel) bool { return t.BID == e.TunnelBID && t.CoA == e.CoA })
		if i < 0 {
			continue
		}
		out = append(out, dataplane.RORoute{BID: tunnels[i].BID, Peer: k.peer, CoA: e.CoA})
		next[k] = e.CoA
	}
	p.roApplied = next
	slices.SortFunc(out, func(a, b dataplane.RORoute) int {
		if a.BID != b.BID {
			return int(a.BID) - int(b.BID)
		}
		return a.Peer.Compare(b.Peer)
	})
	// A binding with BID and one without for the same correspondent on
	// one tunnel (while it turns out not to know MCoA): one route.
	return slices.CompactFunc(out, func(a, b dataplane.RORoute) bool { return a.BID == b.BID && a.Peer == b.Peer })
}

// applyRO hands the route-optimised set to a backend that can use it.
func (p *dataPath) applyRO(ctx context.Context, snap []bul.Entry, tunnels []dataplane.Tunnel) error {
	ro, ok := p.backend.(dataplane.RouteOptimizer)
	if !ok {
		return nil
	}
	routes := p.roRoutes(snap, tunnels)
	if err := ro.SetRORoutes(ctx, routes); err != nil {
		return err
	}
	if p.log.Enabled(ctx, slog.LevelDebug) && len(routes) > 0 {
		p.log.Debug("route-optimised", "routes", routes)
	}
	return nil
}

// roMetrics are the route-optimised packet counters by BID.
func (p *dataPath) roMetrics() []control.Metric {
	ro, ok := p.backend.(dataplane.RouteOptimizer)
	if !ok {
		return nil
	}
	st := ro.ROStats()
	tx := control.Metric{Name: "mcoad_ro_tx_packets_total", Help: "Packets sent route-optimised to correspondents from a BID's care-of address.", Type: "counter"}
	rx := control.Metric{Name: "mcoad_ro_rx_packets_total", Help: "Route-optimised packets received from correspondents at a BID's care-of address.", Type: "counter"}
	bids := make([]uint16, 0, len(st))
	for b := range st {
		bids = append(bids, b)
	}
	slices.Sort(bids)
	for _, b := range bids {
		l := map[string]string{"bid": strconv.Itoa(int(b))}
		tx.Samples = append(tx.Samples, control.Sample{Labels: l, Value: float64(st[b].TxPackets)})
		rx.Samples = append(rx.Samples, control.Sample{Labels: l, Value: float64(st[b].RxPackets)})
	}
	return []control.Metric{tx, rx}
}
