// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
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
//          (or mobile network), and remembers the flow's BID;
// and the correspondent's route optimisation (RFC 6275 9.3.1, 9.3.2) for
// mobile nodes bound to it (bindings marked ro):
//   cn_out: a tc egress program sends a packet to a bound home address to
//          the care-of address the flow (else its peer, else the best
//          binding) came from, with a type 2 routing header holding the
//          home address, out of the interface and next hop the care-of
//          address is routed through;
//   home_decap: also takes a packet with a Home Address option from a
//          care-of address bound to that home address: the home address
//          becomes its source and the option goes; without such a binding
//          the packet is dropped and reported (be_events) for a Binding
//          Error.

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
// ro: a correspondent's bindings (route optimisation), not a home agent's.
struct home_bindings {
	__u32 n;
	__u32 ro;
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

// A packet with a Home Address option no binding covers (RFC 6275 9.3.1):
// the daemon answers with a Binding Error status 1, rate-limited.
struct binding_error {
	struct in6 src;
	struct in6 dst;
	struct in6 hoa;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} be_events SEC(".maps");

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

// learn remembers that flow k (and its peer) came in on bid.
static __always_inline void learn(struct flow_key *k, int ports, __u32 *bid)
{
	__u32 *known;

	if (ports) {
		known = bpf_map_lookup_elem(&flows, k);
		if (!known || *known != *bid)
			bpf_map_update_elem(&flows, k, bid, BPF_ANY);
	}
	// The peer's entry: the same key without protocol and ports.
	k->proto = 0;
	k->hport = 0;
	k->pport = 0;
	known = bpf_map_lookup_elem(&flows, k);
	if (!known || *known != *bid)
		bpf_map_update_elem(&flows, k, bid, BPF_ANY);
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
	if (!ha || !hb || hb->n == 0 || hb->ro) {
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

#define OPT_PAD1 0
#define OPT_PADN 1
#define OPT_HAO 201
#define MAX_OPTS 8

// hao_at finds the Home Address option in the Destination Options header
// right behind the IPv6 header (hdr: its 24 octets at most, as RFC 6275's
// layouts and ours have): its offset in hdr, or -1; -2 for a header to
// drop (an unknown option that asks for it, a second or bad option).
// *only tells whether the header holds nothing else but padding.
static __always_inline int hao_at(const __u8 *hdr, __u32 hlen, int *only)
{
	__u32 i = 2, k;
	int at = -1;

	*only = 1;
#pragma unroll
	for (k = 0; k < MAX_OPTS; k++) {
		__u8 type, len;

		if (i >= hlen || i >= RO_EXT_LEN)
			break;
		type = hdr[i];
		if (type == OPT_PAD1) {
			i++;
			continue;
		}
		if (i + 1 >= hlen || i + 1 >= RO_EXT_LEN)
			return -2;
		len = hdr[i + 1];
		if (i + 2 + len > hlen)
			return -2;
		if (type == OPT_HAO) {
			if (len != 16 || at >= 0)
				return -2;
			at = i;
		} else if (type != OPT_PADN) {
			if (type >> 6)
				return -2; // RFC 8200 4.2: discard
			*only = 0;
		}
		i += 2 + len;
	}
	return at;
}

// cn_in handles a packet with a Home Address option (RFC 6275 9.3.1); PASS
// for anything else.
static __always_inline int cn_in(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ip6hdr *ip6 = data + ETH_HLEN;
	__u8 hdr[RO_EXT_LEN] = {};
	struct flow_key k = {};
	struct coa_key ck = {};
	struct ip6hdr head;
	struct in6 hoa;
	__u32 hlen, *home, *bid;
	int at, only, ports;
	__be16 plen;
	__u8 pad[18] = {OPT_PADN, 16};

	if (skb->protocol != bpf_htons(ETH_P_IPV6) || (void *)(ip6 + 1) > end ||
	    ip6->nexthdr != NEXTHDR_DEST)
		return PASS;
	head = *ip6;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + IPV6_HLEN, hdr, 2))
		return PASS;
	hlen = (hdr[1] + 1) * 8;
	if (hdr[0] == NEXTHDR_MH || hlen > RO_EXT_LEN ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + IPV6_HLEN, hdr, RO_EXT_LEN))
		return PASS; // signaling is pkg/mhsock's; longer headers are not ours
	at = hao_at(hdr, hlen, &only);
	if (at == -1)
		return PASS;
	if (at < 0 || at > RO_EXT_LEN - 18) {
		count_drop(DROP_MALFORMED);
		return TC_ACT_SHOT;
	}
	if (bpf_skb_load_bytes(skb, ETH_HLEN + IPV6_HLEN + at + 2, &hoa, sizeof(hoa)))
		return PASS;
	home = home_of(&hoa);
	if (home) {
		ck.coa = head.saddr;
		ck.home = *home;
	}
	bid = home ? bpf_map_lookup_elem(&coas, &ck) : 0;
	if (!bid) {
		struct binding_error be = {.src = head.saddr, .dst = head.daddr, .hoa = hoa};

		bpf_ringbuf_output(&be_events, &be, sizeof(be), 0);
		count_drop(DROP_NO_BINDING);
		return TC_ACT_SHOT;
	}
	head.saddr = hoa;
	ports = flow_of(skb, ETH_HLEN, &head, 1, &k);
	if (only) {
		plen = bpf_htons(bpf_ntohs(head.payload_len) - hlen);
		if (bpf_skb_store_bytes(skb, ETH_HLEN + 8, &hoa, sizeof(hoa), BPF_F_RECOMPUTE_CSUM) ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + 6, &hdr[0], 1, BPF_F_RECOMPUTE_CSUM) ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + 4, &plen, 2, BPF_F_RECOMPUTE_CSUM) ||
		    bpf_skb_adjust_room(skb, -(__s32)hlen, BPF_ADJ_ROOM_NET, BPF_F_ADJ_ROOM_FIXED_GSO)) {
			count_drop(DROP_DECAP);
			return TC_ACT_SHOT;
		}
	} else if (bpf_skb_store_bytes(skb, ETH_HLEN + 8, &hoa, sizeof(hoa), BPF_F_RECOMPUTE_CSUM) ||
		   bpf_skb_store_bytes(skb, ETH_HLEN + IPV6_HLEN + at, pad, sizeof(pad), BPF_F_RECOMPUTE_CSUM)) {
		count_drop(DROP_DECAP);
		return TC_ACT_SHOT;
	}
	learn(&k, ports, bid);
	count(stats_id(ck.home, *bid), skb->len - ETH_HLEN, 1);
	return TC_ACT_OK;
}

SEC("tc")
int home_decap(struct __sk_buff *skb)
{
	struct in6 src, dst;
	struct ip6hdr inner;
	struct flow_key k = {};
	struct coa_key ck = {};
	__u32 id, hlen, *home, *bid, len = skb->len - ETH_HLEN;
	int ports;

	hlen = tunnel_packet(skb, &src, &dst, &id);
	if (!hlen)
		return cn_in(skb);
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
	learn(&k, ports, bid);
	if (!remove_outer(skb, hlen, &inner))
		return TC_ACT_SHOT;
	count(stats_id(ck.home, *bid), len - hlen, 1);
	return TC_ACT_OK;
}

SEC("tc")
int cn_out(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ip6hdr *ip6 = data + ETH_HLEN, head;
	struct bpf_fib_lookup fib = {};
	struct home_bindings *hb;
	struct flow_key k = {};
	__u8 rh[RO_EXT_LEN] = {0, 2, 2, 1};
	__u32 *home, i, len;
	struct in6 coa;
	__be16 plen;
	int ports;

	if (skb->protocol != bpf_htons(ETH_P_IPV6) || (void *)(ip6 + 1) > end ||
	    !ro_insertable(ip6->nexthdr))
		return PASS;
	head = *ip6;
	home = home_of(&head.daddr);
	hb = home ? bpf_map_lookup_elem(&bindings, home) : 0;
	if (!hb || !hb->ro || hb->n == 0)
		return PASS;
	ports = flow_of(skb, ETH_HLEN, &head, 0, &k);
	i = pick(hb, &k, ports);
	if (i >= MAX_BINDINGS)
		return PASS;
	coa = hb->b[i].coa;
	rh[0] = head.nexthdr;
	__builtin_memcpy(&rh[8], &head.daddr, sizeof(head.daddr));
	len = skb->len - ETH_HLEN;
	plen = bpf_htons(bpf_ntohs(head.payload_len) + RO_EXT_LEN);
	if (insert_ro_header(skb, rh, NEXTHDR_ROUTING, plen, 24, &coa))
		return TC_ACT_SHOT;
	count(stats_id(*home, hb->b[i].bid), len, 0);
	// The care-of address may lie behind another next hop, or another
	// interface, than the home address did: route it again. The kernel's
	// FIB lookup for BPF wants forwarding on the interface even for an
	// output lookup; a host without it keeps the interface and only the
	// next hop is looked up again.
	fib.family = 10; // AF_INET6
	fib.ifindex = skb->ifindex;
	__builtin_memcpy(fib.ipv6_src, &head.saddr, 16);
	__builtin_memcpy(fib.ipv6_dst, &coa, 16);
	switch (bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT | BPF_FIB_LOOKUP_SKIP_NEIGH)) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		return bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return bpf_redirect_neigh(skb->ifindex, 0, 0, 0);
	}
	return TC_ACT_OK; // unroutable: the home address's path is the best guess
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
