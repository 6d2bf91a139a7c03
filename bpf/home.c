// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The home agent's IPv6-in-IPv6 tunnels to its mobile nodes' bindings:
//   home_encap: an LWT xmit program on every home address and mobile network
//          prefix route picks the binding (the one the reverse flow, else
//          its peer, last came in on; else the best priority) and sends the
//          packet encapsulated to that care-of address (BPF_LWT_REROUTE: the
//          outer packet is routed like any other);
//   home_decap: a tc ingress program on the uplinks accepts tunnel packets
//          to the home agent's address only when the outer source is a
//          registered care-of address of the inner source's home address
//          (or mobile network), and remembers the flow's BID.

#include "common.h"

#define MAX_BINDINGS 16
#define MAX_FLOW_EXT 6

// homes: home address /128 and mobile network prefixes -> home id.
struct prefix_key {
	__u32 prefixlen;
	struct in6 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix_key);
	__type(value, __u32);
} homes SEC(".maps");

struct binding {
	struct in6 coa;
	__u16 bid;
	__u16 pad;
};

// A home's bindings, best first (the daemon sorts them: priority, then BID).
struct home_bindings {
	__u32 n;
	struct binding b[MAX_BINDINGS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct home_bindings);
} bindings SEC(".maps");

// A registered care-of address of a home: the BID it is registered with.
struct coa_key {
	struct in6 coa;
	__u32 home;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct coa_key);
	__type(value, __u32);
} coas SEC(".maps");

// A flow from the home address's side (as pkg/dataplane's flow memory):
// the mobile node's address, its peer, the protocol and both ports (for
// ICMPv6 echo the identifier). The peer entry has zero protocol and ports.
struct flow_key {
	struct in6 hoa;
	struct in6 peer;
	__u8 proto;
	__u8 pad;
	__u16 hport;
	__u16 pport;
	__u16 pad2;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, __u32);
} flows SEC(".maps");

// The home agent's address: the outer source of every tunnel packet.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct in6);
} home_agent SEC(".maps");

static __always_inline __u32 stats_id(__u32 home, __u32 bid)
{
	return home << 16 | (bid & 0xffff);
}

static __always_inline __u32 *home_of(const struct in6 *a)
{
	struct prefix_key k = {.prefixlen = 128, .addr = *a};

	return bpf_map_lookup_elem(&homes, &k);
}

// flow_of fills k for the IPv6 packet at off: hoa_is_src says which end is
// the mobile node. Without ports (not TCP, UDP, SCTP, DCCP, UDP-Lite or
// ICMPv6 echo, or a later fragment) only the peer part means anything: it
// returns 0 then.
static __always_inline int flow_of(struct __sk_buff *skb, __u32 off, const struct ip6hdr *ip6,
				   int hoa_is_src, struct flow_key *k)
{
	__u8 nh = ip6->nexthdr, ext[4];
	__u16 ports[3];
	int i;

	k->hoa = hoa_is_src ? ip6->saddr : ip6->daddr;
	k->peer = hoa_is_src ? ip6->daddr : ip6->saddr;
	off += IPV6_HLEN;
#pragma unroll
	for (i = 0; i < MAX_FLOW_EXT; i++) {
		if (nh != NEXTHDR_HOP && nh != NEXTHDR_ROUTING && nh != NEXTHDR_DEST &&
		    nh != NEXTHDR_FRAGMENT && nh != NEXTHDR_AUTH)
			break;
		if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)))
			return 0;
		if (nh == NEXTHDR_FRAGMENT) {
			if ((bpf_ntohs(*(__u16 *)&ext[2]) & ~7) != 0)
				return 0; // not the first fragment: no ports
			off += 8;
		} else if (nh == NEXTHDR_AUTH) {
			off += (ext[1] + 2) * 4;
		} else {
			off += (ext[1] + 1) * 8;
		}
		nh = ext[0];
	}
	k->proto = nh;
	if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)))
		return 0;
	switch (nh) {
	case NEXTHDR_TCP:
	case NEXTHDR_UDP:
	case 132: // SCTP
	case 33:  // DCCP
	case 136: // UDP-Lite
		k->hport = hoa_is_src ? ports[0] : ports[1];
		k->pport = hoa_is_src ? ports[1] : ports[0];
		return 1;
	case NEXTHDR_ICMP: {
		__u8 type = ((__u8 *)ports)[0];

		if (type != 128 && type != 129) // echo request and reply
			return 0;
		k->hport = ports[2]; // the identifier ties request and reply
		return 1;
	}
	}
	return 0;
}

// pick returns the index of the binding for a packet of flow k (ports
// says whether k has ports): the flow's, else the peer's, else the best.
static __always_inline __u32 pick(const struct home_bindings *hb, struct flow_key *k, int ports)
{
	__u32 *bid = 0, i, want;

	if (ports)
		bid = bpf_map_lookup_elem(&flows, k);
	if (!bid) {
		k->proto = 0;
		k->hport = 0;
		k->pport = 0;
		bid = bpf_map_lookup_elem(&flows, k);
	}
	if (!bid)
		return 0;
	want = *bid;
	for (i = 0; i < MAX_BINDINGS; i++) {
		if (i >= hb->n)
			break;
		if (hb->b[i].bid == want)
			return i;
	}
	return 0;
}

SEC("lwt_xmit")
int home_encap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ip6hdr *in = data, out = {}, inner;
	struct home_bindings *hb;
	struct flow_key k = {};
	struct in6 *ha;
	__u32 zero = 0, *home, i, len = skb->len;
	int ports;

	if ((void *)(in + 1) > end || (in->vtc >> 4) != 6) {
		count_drop(DROP_MALFORMED);
		return BPF_DROP;
	}
	inner = *in;
	home = home_of(&inner.daddr);
	ha = bpf_map_lookup_elem(&home_agent, &zero);
	hb = home ? bpf_map_lookup_elem(&bindings, home) : 0;
	if (!ha || !hb || hb->n == 0) {
		count_drop(DROP_NO_TUNNEL);
		return BPF_DROP;
	}
	ports = flow_of(skb, 0, &inner, 0, &k);
	i = pick(hb, &k, ports);
	if (i >= MAX_BINDINGS)
		return BPF_DROP;
	outer_header(skb, &out, &inner, len);
	out.saddr = *ha;
	out.daddr = hb->b[i].coa;
	if (bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, &out, sizeof(out))) {
		count_drop(DROP_ENCAP);
		return BPF_DROP;
	}
	count(stats_id(*home, hb->b[i].bid), len, 0);
	return BPF_LWT_REROUTE;
}

SEC("tc")
int home_decap(struct __sk_buff *skb)
{
	struct in6 src, dst;
	struct ip6hdr inner;
	struct flow_key k = {};
	struct coa_key ck = {};
	__u32 id, hlen, *home, *bid, *known, len = skb->len - ETH_HLEN;
	int ports;

	hlen = tunnel_packet(skb, &src, &dst, &id);
	if (!hlen)
		return PASS;
	if (!inner_ok(skb, hlen, &inner))
		return TC_ACT_SHOT;
	// The inner source must be the home address (or in the mobile
	// network) that this care-of address is registered for.
	home = home_of(&inner.saddr);
	if (home) {
		ck.coa = src;
		ck.home = *home;
	}
	bid = home ? bpf_map_lookup_elem(&coas, &ck) : 0;
	if (!bid) {
		count_drop(DROP_SPOOFED);
		return TC_ACT_SHOT;
	}
	ports = flow_of(skb, ETH_HLEN + hlen, &inner, 1, &k);
	if (ports) {
		known = bpf_map_lookup_elem(&flows, &k);
		if (!known || *known != *bid)
			bpf_map_update_elem(&flows, &k, bid, BPF_ANY);
	}
	// The peer's entry: the same key without protocol and ports.
	k.proto = 0;
	k.hport = 0;
	k.pport = 0;
	known = bpf_map_lookup_elem(&flows, &k);
	if (!known || *known != *bid)
		bpf_map_update_elem(&flows, &k, bid, BPF_ANY);
	if (!remove_outer(skb, hlen, &inner))
		return TC_ACT_SHOT;
	count(stats_id(ck.home, *bid), len - hlen, 1);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
