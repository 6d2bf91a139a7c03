package bpftun

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// MaxBindings is how many bindings of one home the kernel chooses among
// (bpf/home.c MAX_BINDINGS); the daemon passes the best ones.
const MaxBindings = 16

// Binding is a registered care-of address of a home.
type Binding struct {
	CoA netip.Addr
	BID uint16
}

// HomeBID names a binding's counters: its home's id and its BID.
type HomeBID struct {
	Home uint16
	BID  uint16
}

// Home is the home agent's loaded tunnel: one encap program for every home
// route, one decap program for the uplinks, and the maps that hold the
// homes (home addresses and mobile network prefixes) and their bindings.
type Home struct {
	objs homeObjects

	mu    sync.Mutex
	homes map[uint16]homeEntry // what the maps hold, to remove it again
}

type homeEntry struct {
	prefixes []netip.Prefix
	coas     []netip.Addr
}

// LoadHome loads the home agent's programs with ha as the tunnels' outer
// source and the one address it decapsulates for.
func LoadHome(ha netip.Addr) (*Home, error) {
	h := &Home{homes: map[uint16]homeEntry{}}
	if err := loadHomeObjects(&h.objs, nil); err != nil {
		return nil, fmt.Errorf("loading the home agent's tunnel programs: %w", err)
	}
	err := errors.Join(
		h.objs.HomeAgent.Put(uint32(0), homeIn6{A: ha.As16()}),
		h.objs.Endpoints.Put(homeIn6{A: ha.As16()}, uint32(0)))
	if err != nil {
		h.objs.Close()
		return nil, err
	}
	return h, nil
}

// Encap is the LWT xmit program for every home address and mobile network
// prefix route.
func (h *Home) Encap() *ebpf.Program { return h.objs.HomeEncap }

// Decap is the tc ingress program for the home agent's uplinks: tunnel
// packets from bindings, and Home Address options of correspondent
// bindings.
func (h *Home) Decap() *ebpf.Program { return h.objs.HomeDecap }

// CNOut is the tc egress program that route-optimises packets to the
// home addresses of correspondent bindings.
func (h *Home) CNOut() *ebpf.Program { return h.objs.CnOut }

// BindingError is a packet with a Home Address option that no binding
// covers: RFC 6275 9.3.1 answers it with a Binding Error status 1.
type BindingError struct {
	Src, Dst, HoA netip.Addr
}

// BindingErrors reads what Decap reported, until ctx ends; the caller
// rate-limits the answers.
func (h *Home) BindingErrors(ctx context.Context) (<-chan BindingError, error) {
	r, err := ringbuf.NewReader(h.objs.BeEvents)
	if err != nil {
		return nil, err
	}
	out := make(chan BindingError, 16)
	go func() {
		<-ctx.Done()
		r.Close() // ends Read below
	}()
	go func() {
		defer close(out)
		for {
			rec, err := r.Read()
			if err != nil {
				return
			}
			raw := rec.RawSample // struct binding_error: three addresses
			if len(raw) < 48 {
				continue
			}
			be := BindingError{Src: netip.AddrFrom16([16]byte(raw[0:16])), Dst: netip.AddrFrom16([16]byte(raw[16:32])), HoA: netip.AddrFrom16([16]byte(raw[32:48]))}
			select {
			case out <- be:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// SetHome makes prefixes (the home address as a /128, and the mobile
// network prefixes) home id, with bindings bs best first (at most
// MaxBindings are used). It replaces what id had.
func (h *Home) SetHome(id uint16, prefixes []netip.Prefix, bs []Binding) error {
	return h.set(id, prefixes, bs, false)
}

// SetCorrespondent makes hoa, a mobile node bound to this node as its
// correspondent (route optimisation), home id with bindings bs best first:
// CNOut sends to hoa through them, Decap accepts their Home Address options.
// It replaces what id had; ids are shared with SetHome.
func (h *Home) SetCorrespondent(id uint16, hoa netip.Addr, bs []Binding) error {
	return h.set(id, []netip.Prefix{netip.PrefixFrom(hoa, 128)}, bs, true)
}

func (h *Home) set(id uint16, prefixes []netip.Prefix, bs []Binding, ro bool) error {
	if len(bs) > MaxBindings {
		bs = bs[:MaxBindings]
	}
	var hb homeHomeBindings
	hb.N = uint32(len(bs))
	if ro {
		hb.Ro = 1
	}
	coas := make([]netip.Addr, len(bs))
	for i, b := range bs {
		hb.B[i].Coa, hb.B[i].Bid = homeIn6{A: b.CoA.As16()}, b.BID
		coas[i] = b.CoA
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.homes[id]
	// Bindings first, so a packet never finds the home without them.
	if err := h.objs.Bindings.Put(uint32(id), &hb); err != nil {
		return fmt.Errorf("home %d bindings: %w", id, err)
	}
	var errs []error
	for _, b := range bs {
		errs = append(errs, h.objs.Coas.Put(homeCoaKey{Coa: homeIn6{A: b.CoA.As16()}, Home: uint32(id)}, uint32(b.BID)))
	}
	for _, p := range prefixes {
		errs = append(errs, h.objs.Homes.Put(prefixKey(p), uint32(id)))
	}
	errs = append(errs, h.forget(id, old, prefixes, coas))
	h.homes[id] = homeEntry{prefixes: prefixes, coas: coas}
	return errors.Join(errs...)
}

// DeleteHome removes home id: its routes' packets are dropped (counted as
// no-tunnel) until the routes go, and its care-of addresses may no longer
// send.
func (h *Home) DeleteHome(id uint16) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	old, ok := h.homes[id]
	if !ok {
		return nil
	}
	delete(h.homes, id)
	return errors.Join(h.forget(id, old, nil, nil), ignoreNotExist(h.objs.Bindings.Delete(uint32(id))))
}

// forget removes old's prefixes and care-of addresses that keep does not.
func (h *Home) forget(id uint16, old homeEntry, keepPrefixes []netip.Prefix, keepCoAs []netip.Addr) error {
	var errs []error
	for _, p := range old.prefixes {
		if !slices.Contains(keepPrefixes, p) {
			errs = append(errs, ignoreNotExist(h.objs.Homes.Delete(prefixKey(p))))
		}
	}
	for _, a := range old.coas {
		if !slices.Contains(keepCoAs, a) {
			errs = append(errs, ignoreNotExist(h.objs.Coas.Delete(homeCoaKey{Coa: homeIn6{A: a.As16()}, Home: uint32(id)})))
		}
	}
	return errors.Join(errs...)
}

func prefixKey(p netip.Prefix) homePrefixKey {
	return homePrefixKey{Prefixlen: uint32(p.Bits()), Addr: homeIn6{A: p.Masked().Addr().As16()}}
}

// Stats returns every binding's counters, summed over CPUs.
func (h *Home) Stats() (map[HomeBID]Stats, error) {
	raw, err := sumStats(h.objs.Stats)
	if err != nil {
		return nil, err
	}
	out := make(map[HomeBID]Stats, len(raw))
	for id, s := range raw {
		out[HomeBID{Home: uint16(id >> 16), BID: uint16(id)}] = s
	}
	return out, nil
}

// Drops returns how many packets were dropped for each reason.
func (h *Home) Drops() (map[Drop]uint64, error) { return sumDrops(h.objs.Drops) }

// Close unloads the programs and maps; routes and links that use them
// keep them alive until they go.
func (h *Home) Close() error { return h.objs.Close() }
