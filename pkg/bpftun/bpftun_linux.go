package bpftun

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Programs are one loaded copy of the tunnel: shared maps, the decap
// program, and an encap program for each tunnel id.
type Programs struct {
	spec *ebpf.CollectionSpec
	objs tunnelObjects

	mu     sync.Mutex
	encaps map[uint32]*ebpf.Program
}

// Load loads the maps and the decap program. An error means the kernel
// refuses them (no BPF, no LWT-BPF, too old): the caller picks another
// backend.
func Load() (*Programs, error) {
	spec, err := loadTunnel()
	if err != nil {
		return nil, err
	}
	p := &Programs{spec: spec, encaps: map[uint32]*ebpf.Program{}}
	// encap is loaded per tunnel (Encap), with its id set.
	var objs struct {
		tunnelMaps
		Decap *ebpf.Program `ebpf:"decap"`
		ROOut *ebpf.Program `ebpf:"ro_out"`
	}
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("loading the tunnel programs: %w", err)
	}
	p.objs.tunnelMaps = objs.tunnelMaps
	p.objs.Decap, p.objs.RoOut = objs.Decap, objs.ROOut
	return p, nil
}

// Decap is the tc ingress program for every uplink: it decapsulates
// tunnel packets and removes type 2 routing headers (route optimisation).
func (p *Programs) Decap() *ebpf.Program { return p.objs.Decap }

// ROOut is the tc egress program for uplinks with route-optimised
// correspondents: it adds the Home Address option.
func (p *Programs) ROOut() *ebpf.Program { return p.objs.RoOut }

// SetHome sets the home address: the source route optimisation rewrites,
// and the only address a type 2 routing header may hold.
func (p *Programs) SetHome(hoa netip.Addr) error {
	return p.objs.Home.Put(uint32(0), tunnelIn6{A: hoa.As16()})
}

// SetRO route-optimises packets from the home address to cn that leave
// through interface ifindex: they leave from coa with a Home Address
// option, counted for bid.
func (p *Programs) SetRO(cn netip.Addr, ifindex int, coa netip.Addr, bid uint16) error {
	return p.objs.RoPeers.Put(tunnelRoKey{Cn: in6(cn), Ifindex: uint32(ifindex)}, tunnelRoDest{Coa: in6(coa), Bid: uint32(bid)})
}

// DeleteRO sends cn's packets through ifindex as they are again.
func (p *Programs) DeleteRO(cn netip.Addr, ifindex int) error {
	return ignoreNotExist(p.objs.RoPeers.Delete(tunnelRoKey{Cn: in6(cn), Ifindex: uint32(ifindex)}))
}

// Encap returns the LWT xmit program of tunnel id, loading it the first
// time: a route's program knows its tunnel, the maps say where it goes.
func (p *Programs) Encap(id uint32) (*ebpf.Program, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if prog := p.encaps[id]; prog != nil {
		return prog, nil
	}
	spec := p.spec.Copy()
	if err := spec.Variables[tunnelVarTunnelId].Set(id); err != nil {
		return nil, err
	}
	var objs struct {
		Encap *ebpf.Program `ebpf:"encap"`
	}
	err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: p.maps()})
	if err != nil {
		return nil, fmt.Errorf("loading the encapsulation of tunnel %d: %w", id, err)
	}
	p.encaps[id] = objs.Encap
	return objs.Encap, nil
}

func (p *Programs) maps() map[string]*ebpf.Map {
	m := p.objs.tunnelMaps
	return map[string]*ebpf.Map{
		tunnelMapDrops: m.Drops, tunnelMapEndpoints: m.Endpoints, tunnelMapPeers: m.Peers,
		tunnelMapStats: m.Stats, tunnelMapTunnels: m.Tunnels, tunnelMapHome: m.Home, tunnelMapRoPeers: m.RoPeers,
	}
}

// SetTunnel sets (or changes: a care-of address moved) tunnel id's outer
// addresses.
func (p *Programs) SetTunnel(id uint32, e Endpoints) error {
	v := tunnelTunnel{Src: in6(e.Src), Dst: in6(e.Dst)}
	return p.objs.Tunnels.Put(id, v)
}

// DeleteTunnel forgets tunnel id: its route drops what it still sends
// (counted as no-tunnel) until the route goes.
func (p *Programs) DeleteTunnel(id uint32) error {
	return ignoreNotExist(p.objs.Tunnels.Delete(id))
}

// SetEndpoint makes a a local tunnel endpoint of tunnel id (decapsulated
// when the peer is allowed).
func (p *Programs) SetEndpoint(a netip.Addr, id uint32) error {
	return p.objs.Endpoints.Put(in6(a), id)
}

// DeleteEndpoint stops decapsulating for a.
func (p *Programs) DeleteEndpoint(a netip.Addr) error {
	return ignoreNotExist(p.objs.Endpoints.Delete(in6(a)))
}

// AllowPeer lets a send tunnel packets to the local endpoints.
func (p *Programs) AllowPeer(a netip.Addr) error { return p.objs.Peers.Put(in6(a), uint32(1)) }

// DenyPeer stops accepting tunnel packets from a.
func (p *Programs) DenyPeer(a netip.Addr) error {
	return ignoreNotExist(p.objs.Peers.Delete(in6(a)))
}

// Stats returns every tunnel's counters, summed over CPUs.
func (p *Programs) Stats() (map[uint32]Stats, error) {
	all, err := sumStats(p.objs.Stats)
	maps.DeleteFunc(all, func(id uint32, _ Stats) bool { return id >= roStats })
	return all, err
}

// ROStats returns the route-optimised packets' counters by BID.
func (p *Programs) ROStats() (map[uint16]Stats, error) {
	all, err := sumStats(p.objs.Stats)
	out := map[uint16]Stats{}
	for id, s := range all {
		if id >= roStats {
			out[uint16(id-roStats)] = s
		}
	}
	return out, err
}

// roStats is where route optimisation's counters start in the stats map
// (bpf/tunnel.c RO_ID).
const roStats = 1 << 16

// Drops returns how many packets were dropped for each reason.
func (p *Programs) Drops() (map[Drop]uint64, error) { return sumDrops(p.objs.Drops) }

// Close unloads everything; routes and links that use the programs keep
// them alive until they go.
func (p *Programs) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := []error{p.objs.Close()}
	for id, prog := range p.encaps {
		errs = append(errs, prog.Close())
		delete(p.encaps, id)
	}
	return errors.Join(errs...)
}

// AttachIngress attaches prog to the ingress of interface ifindex in the
// calling thread's network namespace, through tcx (kernel 6.6+). Closing
// the link detaches it.
func AttachIngress(prog *ebpf.Program, ifindex int) (link.Link, error) {
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return nil, fmt.Errorf("attaching %s to ingress of interface %d: %w", prog, ifindex, err)
	}
	return l, nil
}

// sumStats reads a per-CPU counters map (struct stats in bpf/common.h).
func sumStats(m *ebpf.Map) (map[uint32]Stats, error) {
	out := map[uint32]Stats{}
	var id uint32
	var perCPU []Stats // the C struct's layout: four 64-bit counters
	it := m.Iterate()
	for it.Next(&id, &perCPU) {
		var s Stats
		for _, c := range perCPU {
			s.TxPackets += c.TxPackets
			s.TxBytes += c.TxBytes
			s.RxPackets += c.RxPackets
			s.RxBytes += c.RxBytes
		}
		out[id] = s
	}
	return out, it.Err()
}

// sumDrops reads the per-CPU drop counters (drops in bpf/common.h).
func sumDrops(m *ebpf.Map) (map[Drop]uint64, error) {
	out := map[Drop]uint64{}
	for d := range numDrops {
		var perCPU []uint64
		if err := m.Lookup(uint32(d), &perCPU); err != nil {
			return nil, fmt.Errorf("drop counter %s: %w", d, err)
		}
		for _, n := range perCPU {
			out[d] += n
		}
	}
	return out, nil
}

func in6(a netip.Addr) tunnelIn6 {
	return tunnelIn6{A: a.As16()}
}

func ignoreNotExist(err error) error {
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}
