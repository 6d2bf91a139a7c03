package ha

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/correspondent"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/proto"
	"github.com/mcoad/mcoad/pkg/rr"
)

// cnRole is mcoa-ha's correspondent node ([correspondent] enabled = true):
// return routability (pkg/rr) in front of a binding cache of its own in the
// correspondent role. It belongs to the Agent's owner goroutine.
//
// Decisions:
//   - The correspondent answers HoTI, CoTI and BUs sent to its addresses
//     ([correspondent] address) only.
//   - Binding Updates without the H flag go to the correspondent; those
//     with it stay with the home agent. A correspondent node alone (no
//     [home_agent]) answers them 131 without return routability and keeps
//     nothing (RFC 6275 9.5.1, 10.3.1).
//   - The return routability check comes first (RFC 6275 9.5.1, draft 6.2
//     "MUST validate ... according to 9.5.1"): a BU without valid Nonce
//     Indices and Binding Authorization Data is silently discarded, even a
//     bulk one; an authorised bulk BU gets 146 from the cache.
//   - BAs carry Binding Authorization Data made with the BU's Kbm, except
//     with 136, 137 and 138 (RFC 6275 9.5.4).
//   - Correspondent bindings do not touch proxy neighbour discovery or the
//     home agent's data plane; the route-optimised data path is the data
//     plane's (see HomeAddressOption).
//   - HoT and CoT answers are limited to initRate per second in all, so
//     that spoofed inits cannot turn the node into a reflector.
type cnRole struct {
	rr    *rr.CN
	cache *bcache.Cache
	addrs []netip.Addr // the addresses it answers on
	// local is the correspondent address each home address registered
	// with: the source of its Binding Refresh Requests.
	local map[netip.Addr]netip.Addr

	out proto.Packet
	ba  proto.Message

	initLimit tokenBucket // HoT and CoT (initRate)

	answered, initRefused, verifyDropped uint64
}

const initRate = 1000

func newCNRole(cfg *config.HA, clk clock.Clock, prof *proto.Profile) (*cnRole, error) {
	c, err := rr.NewCN(rr.CNConfig{Clock: clk})
	if err != nil {
		return nil, fmt.Errorf("ha: correspondent: %w", err)
	}
	return &cnRole{
		rr:        c,
		cache:     bcache.New(cnCacheConfig(cfg, prof), clk),
		addrs:     slices.Clone(cfg.Correspondent.Addresses),
		local:     map[netip.Addr]netip.Addr{},
		initLimit: tokenBucket{rate: initRate},
	}, nil
}

// cnCacheConfig is the correspondent cache's configuration.
func cnCacheConfig(ha *config.HA, prof *proto.Profile) bcache.Config {
	return bcache.Config{Profile: prof, Role: bcache.RoleCN, MaxLifetime: ha.Correspondent.MaxLifetime}
}

// cnHandle takes what the correspondent serves (HoTI, CoTI and BUs to its
// addresses; with a home agent, BUs without the H flag only) and reports
// whether it did.
// r.Err is nil or an error the cache answers or drops (handle took the
// unknown types).
func (a *Agent) cnHandle(r *mhsock.Received) bool {
	if a.cn == nil {
		return false
	}
	p := &r.Packet
	switch p.MH.Type {
	case proto.TypeHoTI, proto.TypeCoTI, proto.TypeBU:
	default:
		return false
	}
	if !slices.Contains(a.cn.addrs, p.Dst) {
		return false
	}
	switch p.MH.Type {
	case proto.TypeHoTI, proto.TypeCoTI:
		a.cnAnswer(p)
	default:
		if p.MH.Flags&proto.FlagH != 0 && a.cfg.HomeAgentRole() {
			return false
		}
		a.cnBU(r)
	}
	return true
}

// cnAnswer sends the HoT or CoT for a HoTI or CoTI (RFC 6275 9.4).
func (a *Agent) cnAnswer(p *proto.Packet) {
	c := a.cn
	if !c.initLimit.take(a.clk.Now()) {
		return
	}
	if err := c.rr.Answer(p, &c.out); err != nil {
		c.initRefused++
		a.log.Debug("test init not answered", "type", p.MH.Type, "src", p.Src, "err", err)
		return
	}
	if err := a.deps.Transport.Send(&c.out, nil); err != nil {
		a.log.Warn("send "+c.out.MH.Type.String(), "dst", c.out.Dst, "err", err)
		return
	}
	c.answered++
}

// cnBU checks a BU's return routability authorization, hands it to the
// correspondent cache and sends the BA. A home registration (H flag) needs
// no authorization: the cache answers it 131 and keeps nothing.
func (a *Agent) cnBU(r *mhsock.Received) {
	c := a.cn
	p := &r.Packet
	home := p.MH.Flags&proto.FlagH != 0
	var st proto.Status
	if !home {
		var err error
		if st, err = c.rr.VerifyBU(p); err != nil {
			c.verifyDropped++
			a.log.Debug("correspondent binding update dropped", "src", p.Src, "hoa", p.HomeAddress, "err", err)
			a.publishBU(p, true, nil, dropRR, err.Error())
			return
		}
	}
	in := bcache.BUInput{Src: p.Src, Dst: p.Dst, HoA: p.HomeAddress, Msg: &p.MH, MH: p.MHBytes, Reject: st, ParseErr: r.Err}
	res := c.cache.ProcessBU(&in, &c.ba)
	if res.Dropped != 0 {
		a.log.Debug("correspondent binding update dropped", "src", p.Src, "hoa", p.HomeAddress, "reason", res.Dropped)
	} else {
		a.log.Debug("correspondent binding update", "src", p.Src, "hoa", p.HomeAddress, "seq", p.MH.Sequence,
			"bids", len(p.MH.Options.BIDs), "status", int(res.Status))
	}
	a.publishBU(p, true, &res, "", "")
	a.cnApply(res.Changes, p.Dst)
	if !res.Send {
		return
	}
	c.out = proto.Packet{Src: p.Dst, Dst: res.Dst, RoutingHome: res.RoutingHome, MH: c.ba}
	var sign proto.Signer
	if !home && rr.NeedsAuthData(res.Status) {
		c.out.MH.Options.HasAuthData = true
		sign = c.rr.BASigner(rr.Addrs(p).Auth, p.Dst)
	}
	if err := a.deps.Transport.Send(&c.out, sign); err != nil {
		a.log.Warn("send binding acknowledgement", "dst", res.Dst, "err", err)
	}
	c.ba = c.out.MH // take the slices back for reuse
}

// CNPlane is told the correspondent's whole cache after every change, so
// that its data path route-optimises (pkg/dataplane/correspondent).
type CNPlane interface {
	SetBindings(ctx context.Context, bs []correspondent.Binding) error
}

// cnApply logs and publishes correspondent cache changes; local is the
// correspondent address the BU was sent to (invalid from a tick).
func (a *Agent) cnApply(changes []bcache.Change, local netip.Addr) {
	c := a.cn
	if len(changes) > 0 {
		defer a.cnPublish()
	}
	for _, ch := range changes {
		switch ch.Kind {
		case bcache.HoAUp:
			if local.IsValid() {
				c.local[ch.HoA] = local
			}
		case bcache.HoADown:
			delete(c.local, ch.HoA)
		default:
			if local.IsValid() {
				c.local[ch.HoA] = local
			}
			a.log.Info("correspondent binding "+ch.Kind.String(), "hoa", ch.HoA, "bid", ch.BID, "coa", ch.CoA, "priority", ch.Priority)
			a.publishCache(c.cache, &ch, false)
		}
	}
}

// cnPublish hands the correspondent cache to the data plane: every live
// binding with the address it was registered with.
func (a *Agent) cnPublish() {
	if a.deps.CNPlane == nil {
		return
	}
	c := a.cn
	var bs []correspondent.Binding
	for _, e := range c.cache.Entries(a.clk.Now()) {
		if l, ok := c.local[e.HoA]; ok && !e.HomeRegistration {
			bs = append(bs, correspondent.Binding{HoA: e.HoA, BID: e.BID, CoA: e.CoA, Priority: e.Priority, Local: l})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), planeTimeout)
	defer cancel()
	if err := a.deps.CNPlane.SetBindings(ctx, bs); err != nil {
		a.log.Warn("correspondent data plane", "err", err)
	}
}

// CNPlaneMetrics are the correspondent's route-optimised packet counters,
// per binding, and what its data plane dropped (GET /metrics).
func CNPlaneMetrics(st dataplane.BindingStats) []control.Metric {
	tx, rx := bindingMetrics(st,
		control.Metric{Name: "mcoa_cn_ro_tx_packets_total", Help: "Packets sent to a binding's care-of address with a type 2 routing header.", Type: "counter"},
		control.Metric{Name: "mcoa_cn_ro_rx_packets_total", Help: "Packets received from a binding's care-of address with a Home Address option.", Type: "counter"})
	d := st.Drops
	drops := dropsMetric("mcoa_cn_dataplane_drops_total", "Packets the correspondent data plane dropped, by reason.",
		reasonCount{"malformed", d.Malformed}, reasonCount{"no_binding", d.NoBinding}, reasonCount{"too_big", d.TooBig},
		reasonCount{"write_error", d.WriteErr})
	return []control.Metric{tx, rx, drops}
}

// nextDue is when the agent's timer must fire: the earlier of the two
// caches' next work (the zero time when neither has any).
func (a *Agent) nextDue() time.Time {
	next := a.cache.Next()
	if a.cn == nil {
		return next
	}
	if n := a.cn.cache.Next(); !n.IsZero() && (next.IsZero() || n.Before(next)) {
		next = n
	}
	return next
}

// cnTick sends the correspondent's due Binding Refresh Requests (with the
// BID, draft 6.4) and applies its expiries.
func (a *Agent) cnTick() {
	c := a.cn
	if c == nil {
		return
	}
	brrs, changes := c.cache.Tick(a.clk.Now())
	for _, b := range brrs {
		src, ok := c.local[b.HoA]
		if !ok {
			continue
		}
		b.Fill(&c.ba)
		c.out = proto.Packet{Src: src, Dst: b.CoA, RoutingHome: b.HoA, MH: c.ba}
		if err := a.deps.Transport.Send(&c.out, nil); err != nil {
			a.log.Warn("send binding refresh request", "hoa", b.HoA, "bid", b.BID, "err", err)
		}
		c.ba = c.out.MH
	}
	a.cnApply(changes, netip.Addr{})
}

// cnEntries appends the correspondent cache to a control API listing.
func (a *Agent) cnEntries(out []control.CacheEntry) []control.CacheEntry {
	if a.cn == nil {
		return out
	}
	for _, e := range a.cn.cache.Entries(a.clk.Now()) {
		out = append(out, control.CacheEntry{HoA: e.HoA, BID: e.BID, CoA: e.CoA, Priority: e.Priority,
			Sequence: e.Sequence, Lifetime: e.Lifetime, ExpiresIn: e.ExpiresIn})
	}
	return out
}

// cnUnknownHAO reports whether a packet from src with a Home Address
// option holding hoa has no correspondent binding behind it (RFC 6275
// 9.3.1, draft 6.5): none of hoa's live bindings has src as care-of
// address.
func (c *cnRole) cnUnknownHAO(src, hoa netip.Addr, now time.Time) bool {
	bid, ok := c.cache.Bound(hoa, src)
	if !ok {
		return true
	}
	b, ok := c.cache.Lookup(hoa, bid)
	return !ok || !now.Before(b.Expires)
}

// ErrNotCorrespondent: the agent does not serve as a correspondent node.
var ErrNotCorrespondent = errors.New("ha: correspondent role not enabled")

// HomeAddressOption is for the data plane: a data packet from src to dst
// (a local address) carried a Home Address option with hoa. When the
// correspondent holds no binding of hoa for src, the sender gets a Binding
// Error with status 1 and no BID sub-option (draft 6.5, with RFC 6275's
// numbering; rate limited with the other Binding Errors). It reports
// whether a Binding Error was due. The data plane calls it only for
// packets its own snapshot of the bindings does not cover (and drops
// them), so that it is not on the per-packet path.
func (a *Agent) HomeAddressOption(ctx context.Context, src, dst, hoa netip.Addr) (bool, error) {
	if a.cn == nil {
		return false, ErrNotCorrespondent
	}
	var due bool
	err := a.do(ctx, func() {
		if due = a.cn.cnUnknownHAO(src, hoa, a.clk.Now()); due {
			a.sendBE(&proto.Packet{Src: src, Dst: dst, HomeAddress: hoa}, proto.BEUnknownHAO, 0)
		}
	})
	return due, err
}
