package relay

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/internal/packet"
)

// flowKey names a flow from the home address's side: home address, peer,
// transport protocol, the home address's port and the peer's port (for
// ICMPv6 echo the identifier, so that requests follow the replies). Its
// first 32 bytes, the two addresses, are the per-peer key.
type flowKey [38]byte

// InnerFlow extracts the flow key of an inner packet. hoaIsSrc says which
// end is the home address: true for packets from the mobile node. ports is
// false when the packet carries no ports (then only the per-peer key means
// anything).
func InnerFlow(p []byte, hoaIsSrc bool) (k flowKey, ports bool) {
	if len(p) < dataplane.IPv6HeaderLen {
		return k, false
	}
	hoa, peer := p[8:24], p[24:40]
	if !hoaIsSrc {
		hoa, peer = peer, hoa
	}
	copy(k[0:16], hoa)
	copy(k[16:32], peer)
	proto, off := upperLayer(p)
	k[32] = proto
	if off < 0 || off+4 > len(p) {
		return k, false
	}
	l4 := p[off:]
	var hport, pport uint16
	switch proto {
	case packet.ProtoTCP, packet.ProtoUDP, 132, 33, 136: // TCP, UDP, SCTP, DCCP, UDP-Lite
		sport, dport := binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		hport, pport = dport, sport
		if hoaIsSrc {
			hport, pport = sport, dport
		}
	case packet.ProtoICMPv6:
		// Echo request 128 and reply 129: the identifier ties them.
		if (l4[0] != 128 && l4[0] != 129) || off+6 > len(p) {
			return k, false
		}
		hport = binary.BigEndian.Uint16(l4[4:6])
	default:
		return k, false
	}
	binary.BigEndian.PutUint16(k[34:36], hport)
	binary.BigEndian.PutUint16(k[36:38], pport)
	return k, true
}

// upperLayer skips the extension headers a flow can carry and returns the
// upper-layer protocol and its offset; the offset is -1 when the header is
// not in this packet (a non-first fragment, or too many headers).
func upperLayer(p []byte) (uint8, int) {
	nh, off := p[6], dataplane.IPv6HeaderLen
	for range 8 {
		switch nh {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if off+2 > len(p) {
				return nh, -1
			}
			nh, off = p[off], off+(int(p[off+1])+1)*8
		case 44: // fragment
			if off+8 > len(p) || binary.BigEndian.Uint16(p[off+2:off+4])&^7 != 0 {
				return nh, -1
			}
			nh, off = p[off], off+8
		case 51: // AH
			if off+2 > len(p) {
				return nh, -1
			}
			nh, off = p[off], off+(int(p[off+1])+2)*4
		default:
			return nh, off
		}
	}
	return nh, -1
}

// flowMemory remembers, per flow and per peer of a home address, the BID
// the mobile node last sent on, so that the home agent answers on the same
// binding (its choice of interface is the mobile node's policy). Both
// tables are direct-mapped: fixed memory, no allocation, a collision just
// forgets the older flow (which then falls back to the peer, then to the
// priority).
type flowMemory struct {
	seed  maphash.Seed
	mu    sync.Mutex
	flows [4096]flowSlot
	peers [1024]flowSlot
}

type flowSlot struct {
	key  flowKey
	bid  uint16
	used bool
}

func NewFlowMemory() *flowMemory { return &flowMemory{seed: maphash.MakeSeed()} }

func (m *flowMemory) slots(k *flowKey, ports bool) (flow, peer *flowSlot, pk flowKey) {
	copy(pk[:32], k[:32])
	peer = &m.peers[maphash.Bytes(m.seed, pk[:32])%uint64(len(m.peers))]
	if ports {
		flow = &m.flows[maphash.Bytes(m.seed, k[:])%uint64(len(m.flows))]
	}
	return flow, peer, pk
}

// Learn records that the mobile node sent flow k on bid.
func (m *flowMemory) Learn(k *flowKey, ports bool, bid uint16) {
	flow, peer, pk := m.slots(k, ports)
	m.mu.Lock()
	if flow != nil && (!flow.used || flow.key != *k || flow.bid != bid) {
		*flow = flowSlot{key: *k, bid: bid, used: true}
	}
	if !peer.used || peer.key != pk || peer.bid != bid {
		*peer = flowSlot{key: pk, bid: bid, used: true}
	}
	m.mu.Unlock()
}

// recall returns the BID the flow, and the peer, last came on.
func (m *flowMemory) recall(k *flowKey, ports bool) (flowBID uint16, flowOK bool, peerBID uint16, peerOK bool) {
	flow, peer, pk := m.slots(k, ports)
	m.mu.Lock()
	if flow != nil && flow.used && flow.key == *k {
		flowBID, flowOK = flow.bid, true
	}
	if peer.used && peer.key == pk {
		peerBID, peerOK = peer.bid, true
	}
	m.mu.Unlock()
	return
}

// rankedBinding is a binding of the home agent's or the correspondent's
// plane: what choosing among a home address's bindings needs.
type rankedBinding interface {
	Rank() (priority uint8, bid uint16)
}

// SortBest orders one home address's bindings best first: the highest
// priority (the draft's section 5.1: higher is preferred), then the lowest
// BID.
func SortBest[B rankedBinding](l []B) {
	slices.SortStableFunc(l, func(a, b B) int {
		pa, ba := a.Rank()
		pb, bb := b.Rank()
		if pa != pb {
			return int(pb) - int(pa)
		}
		return int(ba) - int(bb)
	})
}

// PickBinding chooses the binding for a packet to a home address among its
// bindings bs, best first: the one the packet's flow last came in on (so
// that the mobile node's flow policy decides both directions), else the one
// its peer last came in on, else the best.
func PickBinding[B rankedBinding](m *flowMemory, bs []B, pkt []byte) B {
	k, ports := InnerFlow(pkt, false)
	fbid, fok, pbid, pok := m.recall(&k, ports)
	if fok {
		if b, ok := findBID(bs, fbid); ok {
			return b
		}
	}
	if pok {
		if b, ok := findBID(bs, pbid); ok {
			return b
		}
	}
	return bs[0]
}

func findBID[B rankedBinding](bs []B, bid uint16) (B, bool) {
	for _, b := range bs {
		if _, id := b.Rank(); id == bid {
			return b, true
		}
	}
	var none B
	return none, false
}
