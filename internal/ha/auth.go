package ha

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/proto"
)

// Refused Binding Updates are logged at most once a second per source
// address: a stranger's flood must not flood the journal, and a
// misconfigured mobile node's retransmissions say nothing new.
const (
	refusalLogEvery = time.Second
	// refusalLogMax bounds the sources remembered; beyond it (a flood from
	// many addresses) lines are counted, not written.
	refusalLogMax = 4096
)

type refusalLog struct {
	last       map[netip.Addr]refusalSeen
	suppressed uint64 // not logged since the table was full
}

type refusalSeen struct {
	at     time.Time
	missed uint64 // refusals not logged since at
}

// logRefused writes one WARN line about a refused BU, rate limited per
// source address.
func (a *Agent) logRefused(p *proto.Packet, res bcache.Result) {
	l := &a.refusals
	now := a.clk.Now()
	if l.last == nil {
		l.last = map[netip.Addr]refusalSeen{}
	}
	seen, ok := l.last[p.Src]
	if ok && now.Sub(seen.at) < refusalLogEvery {
		seen.missed++
		l.last[p.Src] = seen
		return
	}
	if !ok && len(l.last) >= refusalLogMax {
		for src, s := range l.last {
			if now.Sub(s.at) >= refusalLogEvery {
				delete(l.last, src)
			}
		}
		if len(l.last) >= refusalLogMax {
			l.suppressed++
			return
		}
	}
	l.last[p.Src] = refusalSeen{at: now}
	hoa := p.HomeAddress
	if !hoa.IsValid() {
		hoa = p.Src
	}
	args := []any{"src", p.Src, "hoa", hoa, "reason", res.Refused.String(), "answer", refusalAnswer(res)}
	if seen.missed > 0 {
		args = append(args, "more_from_src", seen.missed)
	}
	if l.suppressed > 0 {
		args = append(args, "unlogged_other_sources", l.suppressed)
		l.suppressed = 0
	}
	a.log.Warn("binding update refused: "+refusalHint[res.Refused], args...)
}

var refusalHint = map[bcache.Refusal]string{
	bcache.RefusedNoKey:           "no [[home_agent.mn]] key for this home address",
	bcache.RefusedUnauthenticated: "no MN-HA authentication option (the mobile node has no mnha_key?)",
	bcache.RefusedBadAuth:         "MN-HA authentication failed (another SPI or key)",
}

func refusalAnswer(res bcache.Result) string {
	if res.Send {
		return fmt.Sprintf("%d %s", int(res.Status), res.Status)
	}
	return "discarded"
}

// refusedMetric is mcoa_ha_bu_refused_total: every reason has a series,
// zero included, so that an alert on it needs no absent() clause.
func refusedMetric(counts map[string]uint64) control.Metric {
	m := control.Metric{Name: "mcoa_ha_bu_refused_total",
		Help: "Binding Updates refused for want of RFC 4285 authentication, by reason.", Type: "counter"}
	for _, r := range []bcache.Refusal{bcache.RefusedNoKey, bcache.RefusedUnauthenticated, bcache.RefusedBadAuth} {
		m.Samples = append(m.Samples, control.Sample{Labels: map[string]string{"reason": r.String()}, Value: float64(counts[r.String()])})
	}
	return m
}

// authMode is Status.Auth: empty for a correspondent node alone.
func (a *Agent) authMode() string {
	switch {
	case !a.cfg.HomeAgentRole():
		return ""
	case a.cfg.HomeAgent.RequireAuth:
		return "required"
	}
	return "off"
}
