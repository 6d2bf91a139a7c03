package ha

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
)

// The control API: control.HABackend and the metrics, each a snapshot
// taken through the owner goroutine.

// Cache implements control.HABackend.
func (a *Agent) Cache(ctx context.Context) ([]control.CacheEntry, error) {
	var out []control.CacheEntry
	err := a.do(ctx, func() {
		es := a.cache.Entries(a.clk.Now())
		out = make([]control.CacheEntry, len(es))
		for i, e := range es {
			out[i] = control.CacheEntry{HoA: e.HoA, BID: e.BID, CoA: e.CoA, Priority: e.Priority,
				Sequence: e.Sequence, Lifetime: e.Lifetime, ExpiresIn: e.ExpiresIn, HomeRegistration: e.HomeRegistration,
				Prefixes: e.Prefixes}
		}
		out = a.cnEntries(out)
	})
	return out, err
}

// Status implements control.HABackend.
func (a *Agent) Status(ctx context.Context) (control.Status, error) {
	var st control.Status
	err := a.do(ctx, func() {
		h := a.cfg.HomeAgent
		mode := config.RegBulk
		if !h.BulkRegistration || !a.cfg.HomeAgentRole() {
			mode = config.RegIndividual // a correspondent refuses bulk BUs (146)
		}
		n := a.cache.Len()
		var roles []string
		if a.cfg.HomeAgentRole() {
			roles = append(roles, control.RoleHomeAgent)
		}
		var cnAddrs []netip.Addr
		if a.cn != nil {
			roles = append(roles, control.RoleCorrespondent)
			cnAddrs = slices.Clone(a.cn.addrs)
			n += a.cn.cache.Len()
		}
		st = control.Status{
			Daemon:        control.DaemonHA,
			Version:       a.deps.Version,
			HomeAgent:     h.Address,
			Roles:         roles,
			Correspondent: cnAddrs,
			Mode:          string(mode),
			Profile:       a.prof.Name,
			Dataplane:     string(a.cfg.Dataplane.Backend),
			Uptime:        int64(a.clk.Now().Sub(a.started) / time.Second),
			Counts:        control.Counts{Bindings: n, CacheEntries: n},
			Auth:          a.authMode(),
		}
	})
	return st, err
}

// Metrics implements control.MetricsSource (called from the server's
// goroutine: it takes a snapshot through the owner).
func (a *Agent) Metrics() []control.Metric {
	var c bcache.Counters
	var be, beLim, ign uint64
	if a.do(context.Background(), func() {
		c = a.cache.Counters()
		be, beLim, ign = a.beSent, a.beLimit.limited, a.ignored
	}) != nil {
		return nil
	}
	g := func(name, help, typ string, v float64) control.Metric {
		return control.Metric{Name: name, Help: help, Type: typ, Samples: []control.Sample{{Value: v}}}
	}
	rej := control.Metric{Name: "mcoa_ha_bu_rejected_total", Help: "Binding Updates rejected, by BA status.", Type: "counter"}
	for st, n := range c.Rejected {
		rej.Samples = append(rej.Samples, control.Sample{Labels: map[string]string{"status": strconv.Itoa(int(st))}, Value: float64(n)})
	}
	drop := control.Metric{Name: "mcoa_ha_bu_dropped_total", Help: "Binding Updates discarded without answer, by reason.", Type: "counter"}
	for r, n := range c.Dropped {
		drop.Samples = append(drop.Samples, control.Sample{Labels: map[string]string{"reason": r}, Value: float64(n)})
	}
	refused := refusedMetric(c.Refused) // auth.go
	ms := []control.Metric{
		g("mcoa_ha_bindings", "Bindings in the cache.", "gauge", float64(c.Bindings)),
		g("mcoa_ha_home_addresses", "Home addresses with at least one binding.", "gauge", float64(c.HoAs)),
		g("mcoa_ha_bu_received_total", "Binding Updates processed.", "counter", float64(c.Received)),
		g("mcoa_ha_bu_accepted_total", "Binding Updates accepted.", "counter", float64(c.Accepted)),
		rej, drop, refused,
		g("mcoa_ha_ba_sent_total", "Binding Acknowledgements sent.", "counter", float64(c.BAs)),
		g("mcoa_ha_brr_sent_total", "Binding Refresh Requests sent.", "counter", float64(c.BRRs)),
		g("mcoa_ha_expired_total", "Bindings removed at expiry.", "counter", float64(c.Expired)),
		g("mcoa_ha_be_sent_total", "Binding Errors sent.", "counter", float64(be)),
		g("mcoa_ha_be_rate_limited_total", "Binding Errors not sent because of the rate limit.", "counter", float64(beLim)),
		g("mcoa_ha_ignored_total", "Mobility messages a home agent does not serve.", "counter", float64(ign)),
	}
	if a.planeStats != nil {
		ms = append(ms, PlaneMetrics(a.planeStats())...)
	}
	if a.cnStats != nil {
		ms = append(ms, CNPlaneMetrics(a.cnStats())...)
	}
	if p := a.persist; p != nil {
		ms = append(ms,
			g("mcoa_ha_state_writes_total", "Binding cache copies written to the state directory.", "counter", float64(p.store.writes.Load())),
			g("mcoa_ha_state_write_errors_total", "Binding cache copies that could not be written.", "counter", float64(p.store.failures.Load())))
	}
	return ms
}
