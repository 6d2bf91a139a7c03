// Package ha is the mcoa-ha daemon's core: one goroutine owns the binding
// cache and serves Binding Updates from the Mobility Header transport, sends
// the Binding Acknowledgements, Refresh Requests and Errors the cache asks
// for, keeps proxy neighbour advertisements in step with the cache, and
// answers the control API from snapshots.
//
// New(cfg, Deps) builds an Agent (side effects in Deps: nil is the real
// one), Run(ctx) runs it; internal/service serves its control API and
// reloads it, as it does mcoad's (internal/mn), which has the same shape.
package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// Transport is the part of *mhsock.Conn the agent uses; tests fake it.
type Transport interface {
	Recv(ctx context.Context, r *mhsock.Received) error
	Send(p *proto.Packet, sign proto.Signer) error
}

// Proxy keeps proxy neighbour advertisements for exactly the given home
// addresses (*proxynd.Proxy).
type Proxy interface {
	Set(hoas []netip.Addr) error
	// Reach pins a home address to the link-layer address of a mobile
	// node that is back on the home link.
	Reach(hoa netip.Addr, mac net.HardwareAddr) error
}

// Plane is told the whole set of bindings after every change, so that the
// data plane can tunnel home-address traffic (pkg/dataplane's HA side).
type Plane interface {
	SetBindings(bs []bcache.Binding) error
}

// Agent is a running home agent. Its methods other than Run are safe to
// call from any goroutine: they hand a function to the owner goroutine.
type Agent struct {
	cfg     *config.HA // the running configuration (the owner's; Apply replaces it)
	deps    Deps
	log     *slog.Logger
	clk     clock.Clock
	prof    *proto.Profile
	cache   *bcache.Cache
	started time.Time

	reqs    chan func()
	ran     atomic.Bool   // Run was called
	ready   chan struct{} // closed when Run serves
	done    chan struct{} // closed when Run returns
	closers []func()      // what New opened, closed by Run last first
	proxied map[netip.Addr]bool
	cn      *cnRole    // nil unless [correspondent] enabled (cn.go)
	persist *persister // nil unless the cache is kept (state.go)
	control config.Control
	// The real planes' counters (nil with fakes or without planes).
	planeStats, cnStats func() dataplane.BindingStats

	// owner-goroutine scratch, reused
	ba, out proto.Message
	pkt     proto.Packet
	binds   []bcache.Binding

	beSent, ignored uint64
	beLimit         tokenBucket // Binding Errors (beRate)
	refusals        refusalLog  // auth.go
}

// cacheConfig is the binding cache's configuration from [home_agent].
func cacheConfig(ha *config.HA, prof *proto.Profile) bcache.Config {
	h := ha.HomeAgent
	keys := map[netip.Addr]bcache.MNHAKey{}
	routers := map[netip.Addr][]netip.Prefix{}
	for _, mn := range h.MNs {
		if mn.Key != "" {
			keys[mn.HomeAddress] = bcache.MNHAKey{SPI: mn.SPI, Key: mn.Key.Bytes()}
		}
		if len(mn.Prefixes) > 0 {
			routers[mn.HomeAddress] = slices.Clone(mn.Prefixes)
		}
	}
	bc := bcache.Config{
		Profile:          prof,
		Role:             bcache.RoleHA,
		Serve:            h.Serve,
		HomePrefix:       h.HomePrefix,
		MaxLifetime:      h.MaxLifetime,
		BulkRegistration: h.BulkRegistration,
	}
	if len(routers) > 0 {
		// NEMO (RFC 3963): the MNs with prefixes are mobile routers.
		bc.MobileRouters = func(hoa netip.Addr) ([]netip.Prefix, bool) {
			ps, ok := routers[hoa]
			return ps, ok
		}
	}
	if len(keys) > 0 {
		bc.MNHAKeys = func(hoa netip.Addr) (bcache.MNHAKey, bool) {
			k, ok := keys[hoa]
			return k, ok
		}
	}
	// Home addresses without a key are refused (129) unless the
	// configuration allows them unauthenticated.
	bc.RequireAuth = h.RequireAuth
	return bc
}

const recvQueue = 64

// Run serves until ctx ends. With a state directory it first restores the
// saved bindings (proxy neighbour entries and data plane included), and on
// return it writes the cache a last time. On return the proxy entries are
// withdrawn and what New opened is closed.
//
// Run may be called once. Once it has returned, the other methods return
// ErrStopped (Metrics returns nil).
func (a *Agent) Run(ctx context.Context) error {
	if !a.ran.CompareAndSwap(false, true) {
		return errors.New("ha: Run called twice")
	}
	// Deferred first, so run last: the correspondent plane's callback
	// (bindingError) is told ErrStopped before the plane waits for it.
	defer a.close()
	// After the final state write and the proxy withdrawal.
	defer close(a.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.persist != nil {
		a.startPersist()
		defer a.stopPersist()
		a.restore()
	}
	if a.deps.Proxy != nil {
		// Level-triggered: the proxy entries a killed run left (which
		// the proxy adopted) go unless restored bindings want them.
		if err := a.deps.Proxy.Set(a.proxiedList()); err != nil {
			a.log.Warn("proxy neighbour advertisement", "err", err)
		}
	}
	in, free, readErr := a.receive(ctx)
	a.logRunning()
	close(a.ready)
	return a.serve(ctx, in, free, readErr)
}

// receive starts the reader goroutine. It fills Received values from a
// small pool and hands them over; the owner gives them back once handled,
// so the steady state allocates nothing per packet.
func (a *Agent) receive(ctx context.Context) (in <-chan *mhsock.Received, free chan<- *mhsock.Received, readErr <-chan error) {
	pool := make(chan *mhsock.Received, recvQueue)
	for range recvQueue {
		pool <- new(mhsock.Received)
	}
	got := make(chan *mhsock.Received, recvQueue)
	errc := make(chan error, 1)
	go func() {
		for {
			var r *mhsock.Received
			select {
			case r = <-pool:
			case <-ctx.Done():
				return
			}
			if err := a.deps.Transport.Recv(ctx, r); err != nil {
				if ctx.Err() != nil {
					return
				}
				errc <- fmt.Errorf("ha: receive: %w", err)
				return
			}
			select {
			case got <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	return got, pool, errc
}

// serve is the owner goroutine's loop.
func (a *Agent) serve(ctx context.Context, in <-chan *mhsock.Received, free chan<- *mhsock.Received, readErr <-chan error) error {
	timer := a.clk.NewTimer(time.Hour)
	defer timer.Stop()
	rearm := func() {
		next := a.nextDue()
		if next.IsZero() {
			timer.Reset(time.Hour)
			return
		}
		timer.Reset(max(next.Sub(a.clk.Now()), 0))
	}
	defer a.withdraw()
	for {
		rearm()
		saveTimer, saveDone := a.persist.chans()
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return err
		case r := <-in:
			a.handle(r)
			free <- r
		case <-timer.C():
			a.tick()
		case fn := <-a.reqs:
			fn()
		case <-saveTimer:
			a.persist.armed = false
		case r := <-saveDone:
			a.saved(r)
		}
		a.saveDue()
	}
}

// handle processes one received Mobility Header packet.
func (a *Agent) handle(r *mhsock.Received) {
	p := &r.Packet
	if errors.Is(r.Err, proto.ErrUnknownType) {
		// RFC 6275 9.2: answer an unknown MH type with BE status 2, and
		// with the BID when one is known (draft 6.5).
		a.sendBE(p, proto.BEUnknownType, 0)
		return
	}
	if a.cnHandle(r) {
		return
	}
	switch p.MH.Type {
	case proto.TypeBU:
		if !a.cfg.HomeAgentRole() {
			// A correspondent node alone, at an address it does not
			// answer on (cnHandle took the others).
			a.ignored++
			a.log.Debug("ignored binding update", "src", p.Src, "dst", p.Dst)
			a.publishBU(p, false, nil, dropNotServed, "")
			return
		}
		a.handleBU(r)
	default:
		// HoTI/CoTI not for the correspondent role; a home agent gets
		// nothing else from a mobile node.
		a.ignored++
		a.log.Debug("ignored mobility message", "type", p.MH.Type, "src", p.Src)
	}
}

func (a *Agent) handleBU(r *mhsock.Received) {
	p := &r.Packet
	// r.Err is nil or what mhsock delivers for the cache to answer: a
	// *proto.BIDError (refused per BID: draft 6.2) or a prefix length
	// over 128 (141, RFC 3963 6.1.2).
	in := bcache.BUInput{
		Src: p.Src, Dst: p.Dst, HoA: p.HomeAddress,
		Msg: &p.MH, MH: p.MHBytes, ParseErr: r.Err,
	}
	res := a.cache.ProcessBU(&in, &a.ba)
	if res.Refused != bcache.NotRefused {
		a.logRefused(p, res) // auth.go
	}
	if res.Dropped != 0 {
		a.log.Debug("binding update dropped", "src", p.Src, "hoa", p.HomeAddress, "reason", res.Dropped)
	} else {
		a.log.Debug("binding update", "src", p.Src, "hoa", p.HomeAddress, "seq", p.MH.Sequence,
			"bids", len(p.MH.Options.BIDs), "prefixes", len(p.MH.Options.Prefixes), "status", int(res.Status))
	}
	a.publishBU(p, false, &res, "", "")
	// Proxying starts before the BA tells the mobile node it is
	// registered, and stops before a returning-home BA (RFC 6275 10.3).
	a.apply(res.Changes)
	if res.Send && !res.RoutingHome.IsValid() && res.Dst == p.Src && !p.HomeAddress.IsValid() &&
		a.deps.Proxy != nil && r.IfName == a.cfg.HomeAgent.Interface && r.LinkSrcLen == 6 {
		// A mobile node de-registering from its home link: answer it at
		// its link-layer address, since it does not yet answer for its
		// home address (RFC 6275 11.5.4).
		if err := a.deps.Proxy.Reach(res.Dst, net.HardwareAddr(r.LinkSrc[:6])); err != nil {
			a.log.Warn("reach mobile node on the home link", "hoa", res.Dst, "err", err)
		}
	}
	if res.Send {
		a.pkt = proto.Packet{Src: p.Dst, Dst: res.Dst, RoutingHome: res.RoutingHome, MH: a.ba}
		if err := a.deps.Transport.Send(&a.pkt, res.Signer); err != nil {
			a.log.Warn("send binding acknowledgement", "dst", res.Dst, "err", err)
		}
		// The BA shares slices with a.ba: take them back for reuse.
		a.ba = a.pkt.MH
	}
}

// tick sends due Binding Refresh Requests and applies expiries.
func (a *Agent) tick() {
	brrs, changes := a.cache.Tick(a.clk.Now())
	for _, b := range brrs {
		b.Fill(&a.out)
		a.pkt = proto.Packet{Src: a.cfg.HomeAgent.Address, Dst: b.CoA, RoutingHome: b.HoA, MH: a.out}
		if err := a.deps.Transport.Send(&a.pkt, nil); err != nil {
			a.log.Warn("send binding refresh request", "hoa", b.HoA, "bid", b.BID, "err", err)
		}
		a.out = a.pkt.MH
	}
	a.apply(changes)
	a.cnTick()
}

// apply turns cache changes into events, proxy ND and data plane state.
func (a *Agent) apply(changes []bcache.Change) {
	if len(changes) == 0 {
		return
	}
	proxyChanged := false
	for _, c := range changes {
		switch c.Kind {
		case bcache.HoAUp:
			a.proxied[c.HoA] = true
			proxyChanged = true
		case bcache.HoADown:
			delete(a.proxied, c.HoA)
			proxyChanged = true
		case bcache.PrefixesChanged:
			// NEMO: the data plane routes them with the bindings below.
			a.log.Info("mobile network prefixes", "hoa", c.HoA, "prefixes", c.Prefixes)
		default:
			a.log.Info("binding "+c.Kind.String(), "hoa", c.HoA, "bid", c.BID, "coa", c.CoA, "priority", c.Priority)
			a.publishCache(a.cache, &c, true)
		}
	}
	if proxyChanged && a.deps.Proxy != nil {
		if err := a.deps.Proxy.Set(a.proxiedList()); err != nil {
			a.log.Warn("proxy neighbour advertisement", "err", err)
		}
	}
	if a.deps.Plane != nil {
		a.binds = a.binds[:0]
		for hoa := range a.proxied {
			a.binds = a.cache.LookupHoA(hoa, a.binds)
		}
		if err := a.deps.Plane.SetBindings(a.binds); err != nil {
			a.log.Warn("data plane", "err", err)
		}
	}
}

func (a *Agent) proxiedList() []netip.Addr {
	out := make([]netip.Addr, 0, len(a.proxied))
	for h := range a.proxied {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

func (a *Agent) withdraw() {
	if a.deps.Proxy != nil && len(a.proxied) > 0 {
		if err := a.deps.Proxy.Set(nil); err != nil {
			a.log.Warn("withdraw proxy neighbour advertisements", "err", err)
		}
	}
}

// beRate bounds Binding Errors (they answer unauthenticated packets) to a
// few per second so that the agent cannot be used as a reflector.
const beRate = 10

func (a *Agent) sendBE(p *proto.Packet, status proto.Status, bid uint16) {
	if !a.beLimit.take(a.clk.Now()) {
		return
	}
	hoa := p.HomeAddress
	if !hoa.IsValid() {
		hoa = p.Src
	}
	bcache.BindingError(&a.out, status, hoa, bid)
	a.pkt = proto.Packet{Src: p.Dst, Dst: p.Src, MH: a.out}
	if err := a.deps.Transport.Send(&a.pkt, nil); err != nil {
		a.log.Warn("send binding error", "dst", p.Src, "err", err)
	} else {
		a.beSent++
	}
	a.out = a.pkt.MH
}

// ErrStopped is returned by the Agent's methods once Run has returned.
var ErrStopped = errors.New("ha: agent stopped")

// do runs fn on the owner goroutine and waits for it. It fails with
// ErrStopped once Run has returned, and with ctx's error when ctx ends
// first; before Run starts it waits.
func (a *Agent) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case a.reqs <- func() { fn(); close(done) }:
	case <-a.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once taken, fn runs to its end before Run can return.
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
