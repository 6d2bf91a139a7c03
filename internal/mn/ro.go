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

// Route optimisation: the correspondents' bindings of the engine become
// the data plane's route-optimised routes (dataplane.RouteOptimizer), next
// to the tunnels and with the same level-triggered apply.

// cnKey names a correspondent binding: the correspondent and the BID (0
// for a correspondent without MCoA).
type cnKey struct {
	peer netip.Addr
	bid  uint16
}

// roView is the data path's picture of the correspondent bindings.
type roView struct {
	cns     map[cnKey]bul.Entry  // as last reported
	applied map[cnKey]netip.Addr // CoA by binding, as last applied
}

// observeCN keeps the latest state of each correspondent binding and
// reports whether ev was about one; it runs on the engine's goroutine.
func (p *dataPath) observeCN(ev bul.Event) bool {
	b := ev.Binding
	if b.Role != "cn" {
		return false
	}
	p.mu.Lock()
	if p.ro.cns == nil {
		p.ro.cns = map[cnKey]bul.Entry{}
	}
	switch ev.Type {
	case bul.EventBinding:
		p.ro.cns[cnKey{b.Peer, b.BID}] = *b
	case bul.EventRemoved:
		delete(p.ro.cns, cnKey{b.Peer, b.BID})
	}
	p.mu.Unlock()
	p.kick()
	return true
}

// roRoutes is the route-optimised set for tunnels: each correspondent
// binding whose care-of address is its BID tunnel's. A registered binding
// counts; one being refreshed only with the care-of address it had when it
// was last applied (a refresh to a new care-of address is not the
// correspondent's binding until acknowledged). A binding without BID (a
// correspondent without MCoA) goes with the tunnel of its care-of address.
func (p *dataPath) roRoutes(tunnels []dataplane.Tunnel) []dataplane.RORoute {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []dataplane.RORoute
	next := map[cnKey]netip.Addr{}
	for k, e := range p.ro.cns {
		ok := e.State == bul.StateRegistered || e.State == bul.StateRefreshing && p.ro.applied[k] == e.CoA
		if !ok || !e.CoA.IsValid() {
			continue
		}
		for _, t := range tunnels {
			if t.CoA == e.CoA && (e.BID == 0 || e.BID == t.BID) {
				out = append(out, dataplane.RORoute{BID: t.BID, Peer: k.peer, CoA: e.CoA})
				next[k] = e.CoA
				break
			}
		}
	}
	p.ro.applied = next
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
func (p *dataPath) applyRO(ctx context.Context, tunnels []dataplane.Tunnel) error {
	ro, ok := p.backend.(dataplane.RouteOptimizer)
	if !ok {
		return nil
	}
	routes := p.roRoutes(tunnels)
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
