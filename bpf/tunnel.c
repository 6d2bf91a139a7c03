// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The mobile node's IPv6-in-IPv6 tunnels (RFC 2473 packets, next header
// 41), with no ip6_tunnel module:
//   encap: an LWT xmit program on each BID's routes pushes the outer header
//          (one program instance per tunnel: tunnel_id is set at load) and
//          hands the packet to the route's gateway on that BID's uplink;
//   decap: a tc ingress program on each uplink strips the outer header of
//          packets sent to a care-of address by an allowed peer (the home
//          agent, bound correspondents) and drops the rest of next header
//          41 to that address (spoofed or malformed).

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

SEC("tc")
int decap(struct __sk_buff *skb)
{
	struct in6 src, dst;
	struct ip6hdr inner;
	__u32 id, hlen, len = skb->len - ETH_HLEN;

	hlen = tunnel_packet(skb, &src, &dst, &id);
	if (!hlen)
		return TC_ACT_OK;
	if (!bpf_map_lookup_elem(&peers, &src)) {
		count_drop(DROP_SPOOFED);
		return TC_ACT_SHOT;
	}
	if (!inner_ok(skb, hlen, &inner) || !remove_outer(skb, hlen, &inner))
		return TC_ACT_SHOT;
	count(id, len - hlen, 1);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
