// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// The mobile node's IPv6-in-IPv6 tunnels (RFC 2473 packets, next header
// 41), with no ip6_tunnel module:
//   encap: an LWT xmit program on each BID's routes pushes the outer header
//          (one program instance per tunnel: tunnel_id is set at load) and
//          hands the packet to the route's gateway on that BID's uplink;
//   decap: a tc ingress program on each uplink strips the outer header of
//          packets sent to a care-of address by an allowed peer (the home
//          agent, bound correspondents) and drops the rest of next header
//          41 to that address (spoofed or malformed);
// and route optimisation (RFC 6275 11.3.1, 11.3.3), done by the same
// programs' side paths:
//   ro_out: a tc egress program on each uplink turns a packet from the home
//          address to a correspondent bound on that uplink into one from
//          the uplink's care-of address with a Home Address option;
//   decap:  removes the type 2 routing header of a packet to a care-of
//          address when it holds the home address (signaling, with a
//          Mobility Header behind it, is left to pkg/mhsock).
// Upper-layer checksums need no change either way: RFC 6275 computes them
// over the home address, which is what both stacks used.

#include "common.h"

// A tunnel's outer addresses. Written by the daemon; a care-of address
// change is one map update.
struct tunnel {
	struct in6 src;
	struct in6 dst;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct tunnel);
} tunnels SEC(".maps");

// Outer sources allowed to reach the endpoints; the value is unused.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct in6);
	__type(value, __u32);
} peers SEC(".maps");

// The home address (index 0).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct in6);
} home SEC(".maps");

// A correspondent bound on an uplink: packets to it leaving that uplink are
// route-optimised from its care-of address.
struct ro_key {
	struct in6 cn;
	__u32 ifindex;
};

struct ro_dest {
	struct in6 coa;
	__u32 bid;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ro_key);
	__type(value, struct ro_dest);
} ro_peers SEC(".maps");

// Route optimisation counts apart from the tunnels: stats key RO_ID(bid).
#define RO_ID(bid) ((1 << 16) | ((bid) & 0xffff))

// The Destination Options header with the Home Address option at 8n+6
// (RFC 6275 6.3), as pkg/proto and the userspace path lay it out.
struct hao_hdr {
	__u8 nexthdr;
	__u8 len;	// 2: 24 octets
	__u8 padn[4];	// PadN, 2 octets of padding
	__u8 type;	// 201
	__u8 optlen;	// 16
	struct in6 hoa;
};

// The type 2 routing header (RFC 6275 6.4).
struct rh2_hdr {
	__u8 nexthdr;
	__u8 len;	// 2
	__u8 type;	// 2
	__u8 segleft;	// 1
	__u32 reserved;
	struct in6 hoa;
};

// Set per loaded instance of encap (cilium/ebpf rewrites it).
volatile const __u32 tunnel_id = 0;

SEC("lwt_xmit")
int encap(struct __sk_buff *skb)
{
	__u32 id = tunnel_id;
	struct tunnel *t = bpf_map_lookup_elem(&tunnels, &id);
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ip6hdr *in = data;
	struct ip6hdr out = {};
	__u32 len = skb->len;

	if (!t) {
		count_drop(DROP_NO_TUNNEL);
		return BPF_DROP;
	}
	if ((void *)(in + 1) > end || (in->vtc >> 4) != 6) {
		count_drop(DROP_MALFORMED);
		return BPF_DROP;
	}
	outer_header(skb, &out, in, len);
	out.saddr = t->src;
	out.daddr = t->dst;
	if (bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, &out, sizeof(out))) {
		count_drop(DROP_ENCAP);
		return BPF_DROP;
	}
	count(id, len, 0);
	// The route's gateway is the next hop of the outer packet, on the
	// route's uplink: the BID's path.
	return BPF_OK;
}

// ro_in removes the type 2 routing header of a packet to a care-of
// address that holds the home address; PASS for anything else.
static __always_inline int ro_in(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ip6hdr *ip6 = data + ETH_HLEN;
	struct rh2_hdr rh;
	struct in6 dst, *hoa;
	__u32 zero = 0, *id;
	__be16 plen;

	if (skb->protocol != bpf_htons(ETH_P_IPV6) || (void *)(ip6 + 1) > end ||
	    ip6->nexthdr != NEXTHDR_ROUTING)
		return PASS;
	dst = ip6->daddr;
	plen = ip6->payload_len;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + IPV6_HLEN, &rh, sizeof(rh)) || rh.type != 2 ||
	    rh.nexthdr == NEXTHDR_MH)
		return PASS;
	id = bpf_map_lookup_elem(&endpoints, &dst);
	hoa = bpf_map_lookup_elem(&home, &zero);
	if (!id || !hoa)
		return PASS;
	if (rh.len != 2 || rh.segleft != 1 || !same(&rh.hoa, hoa)) {
		count_drop(DROP_NOT_HOME);
		return TC_ACT_SHOT;
	}
	plen = bpf_htons(bpf_ntohs(plen) - RO_EXT_LEN);
	if (bpf_skb_store_bytes(skb, ETH_HLEN + 24, hoa, sizeof(*hoa), BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + 6, &rh.nexthdr, 1, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + 4, &plen, 2, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_adjust_room(skb, -RO_EXT_LEN, BPF_ADJ_ROOM_NET, BPF_F_ADJ_ROOM_FIXED_GSO)) {
		count_drop(DROP_DECAP);
		return TC_ACT_SHOT;
	}
	count(RO_ID(*id), skb->len - ETH_HLEN, 1);
	return TC_ACT_OK;
}

SEC("tc")
int decap(struct __sk_buff *skb)
{
	struct in6 src, dst;
	struct ip6hdr inner;
	__u32 id, hlen, len = skb->len - ETH_HLEN;

	hlen = tunnel_packet(skb, &src, &dst, &id);
	if (!hlen)
		return ro_in(skb);
	if (!bpf_map_lookup_elem(&peers, &src)) {
		count_drop(DROP_SPOOFED);
		return TC_ACT_SHOT;
	}
	if (!inner_ok(skb, hlen, &inner) || !remove_outer(skb, hlen, &inner))
		return TC_ACT_SHOT;
	count(id, len - hlen, 1);
	return TC_ACT_OK;
}

SEC("tc")
int ro_out(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ip6hdr *ip6 = data + ETH_HLEN;
	struct ro_key k = {.ifindex = skb->ifindex};
	struct hao_hdr hao = {.len = 2, .padn = {1, 2}, .type = 201, .optlen = 16};
	struct ro_dest *d;
	struct in6 *hoa, src;
	__u32 zero = 0, len;
	__be16 plen;

	if (skb->protocol != bpf_htons(ETH_P_IPV6) || (void *)(ip6 + 1) > end ||
	    !ro_insertable(ip6->nexthdr))
		return PASS;
	k.cn = ip6->daddr;
	src = ip6->saddr;
	hao.nexthdr = ip6->nexthdr;
	plen = ip6->payload_len;
	d = bpf_map_lookup_elem(&ro_peers, &k);
	hoa = bpf_map_lookup_elem(&home, &zero);
	if (!d || !hoa || !same(&src, hoa))
		return PASS;
	hao.hoa = *hoa;
	len = skb->len - ETH_HLEN;
	plen = bpf_htons(bpf_ntohs(plen) + RO_EXT_LEN);
	if (insert_ro_header(skb, &hao, NEXTHDR_DEST, plen, 8, &d->coa))
		return TC_ACT_SHOT;
	count(RO_ID(d->bid), len, 0);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
