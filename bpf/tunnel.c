// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The IPv6-in-IPv6 tunnel of the eBPF data plane (RFC 2473 packets, next
// header 41), with no ip6_tunnel module:
//   encap: an LWT xmit program on each tunnel route pushes the outer header
//          (one program instance per tunnel: tunnel_id is set at load);
//   decap: a tc ingress program on each uplink strips the outer header of
//          packets sent to a local endpoint by an allowed peer, and drops the
//          rest of next header 41 to that endpoint (spoofed or malformed).
// Every outcome that is not "pass" is counted per tunnel or per reason.

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// Debian 12's uapi headers predate these (kernel 6.3); the values are ABI.
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV6
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

#define ETH_HLEN 14
#define ETH_P_IPV6 0x86DD
#define IPV6_HLEN 40
#define NEXTHDR_HOP 0
#define NEXTHDR_IPV6 41
#define NEXTHDR_ROUTING 43
#define NEXTHDR_DEST 60
#define MAX_EXT_HDRS 4
#define TUNNEL_HOP_LIMIT 64

struct in6 {
	__u8 a[16];
};

struct ip6hdr {
	__u8 vtc;	// version (4 bits), traffic class high nibble
	__u8 tcfl;	// traffic class low nibble, flow label high nibble
	__u16 fl;	// flow label, low 16 bits
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	struct in6 saddr;
	struct in6 daddr;
};

// A tunnel's outer addresses. Written by the daemon; a care-of address
// change is one map update.
struct tunnel {
	struct in6 src;
	struct in6 dst;
};

// Per-tunnel counters (per CPU; the daemon sums them).
struct stats {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
};

// Why a packet was dropped: the index into drops. Kept in step with
// pkg/bpftun's Drop* constants.
enum drop_reason {
	DROP_NO_TUNNEL,	 // encap: the route's tunnel has no addresses yet
	DROP_MALFORMED,	 // no IPv6 packet inside, or truncated headers
	DROP_SPOOFED,	 // decap: outer source is not an allowed peer
	DROP_ENCAP,	 // the kernel refused to push the header
	DROP_DECAP,	 // the kernel refused to remove the header
	DROP_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct tunnel);
} tunnels SEC(".maps");

// Local tunnel endpoints (care-of addresses): address -> tunnel id.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct in6);
	__type(value, __u32);
} endpoints SEC(".maps");

// Outer sources allowed to reach an endpoint (the home agent, bound
// correspondents); the value is unused.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct in6);
	__type(value, __u32);
} peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

// Set per loaded instance of encap (cilium/ebpf rewrites it).
volatile const __u32 tunnel_id = 0;

static __always_inline void count_drop(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &reason);

	if (n)
		*n += 1;
}

static __always_inline void count(__u32 id, __u32 len, int rx)
{
	struct stats *s = bpf_map_lookup_elem(&stats, &id);

	if (!s) {
		struct stats zero = {};

		bpf_map_update_elem(&stats, &id, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stats, &id);
		if (!s)
			return;
	}
	if (rx) {
		s->rx_packets++;
		s->rx_bytes += len;
	} else {
		s->tx_packets++;
		s->tx_bytes += len;
	}
}

SEC("lwt_xmit")
int encap(struct __sk_buff *skb)
{
	__u32 id = tunnel_id;
	struct tunnel *t = bpf_map_lookup_elem(&tunnels, &id);
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ip6hdr *in = data;
	struct ip6hdr out = {};
	__u32 flow, len = skb->len;

	if (!t) {
		count_drop(DROP_NO_TUNNEL);
		return BPF_DROP;
	}
	if ((void *)(in + 1) > end || (in->vtc >> 4) != 6) {
		count_drop(DROP_MALFORMED);
		return BPF_DROP;
	}
	// RFC 2473 6.3: the flow label is the tunnel's own; the packet hash
	// keeps one inner flow on one outer flow (ECMP on the path).
	flow = bpf_get_hash_recalc(skb) & 0xfffff;
	out.vtc = 0x60 | (in->vtc & 0x0f);
	out.tcfl = (in->tcfl & 0xf0) | (flow >> 16);
	out.fl = bpf_htons(flow & 0xffff);
	// The kernel does not set it for IPv6; a GSO packet's segments get
	// their own when segmented.
	out.payload_len = bpf_htons(len > 0xffff ? 0 : len);
	out.nexthdr = NEXTHDR_IPV6;
	out.hop_limit = TUNNEL_HOP_LIMIT;
	out.saddr = t->src;
	out.daddr = t->dst;
	if (bpf_lwt_push_encap(skb, BPF_LWT_ENCAP_IP, &out, sizeof(out))) {
		count_drop(DROP_ENCAP);
		return BPF_DROP;
	}
	count(id, len + sizeof(out), 0);
	// The route's gateway is the next hop of the outer packet.
	return BPF_OK;
}

// outer_len returns the length of the outer IPv6 header and its extension
// headers when the packet at ETH_HLEN is IPv6 in IPv6, else 0.
static __always_inline __u32 outer_len(struct __sk_buff *skb, __u8 nexthdr)
{
	__u32 off = ETH_HLEN + IPV6_HLEN;
	__u8 ext[2];
	int i;

#pragma unroll
	for (i = 0; i < MAX_EXT_HDRS; i++) {
		if (nexthdr != NEXTHDR_HOP && nexthdr != NEXTHDR_ROUTING && nexthdr != NEXTHDR_DEST)
			break;
		if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)))
			return 0;
		nexthdr = ext[0];
		off += (ext[1] + 1) * 8;
	}
	if (nexthdr != NEXTHDR_IPV6)
		return 0;
	return off - ETH_HLEN;
}

SEC("tc")
int decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ip6hdr *ip6 = data + ETH_HLEN;
	struct in6 src, dst;
	__u32 *id, hlen, len;
	__u8 inner;

	if (skb->protocol != bpf_htons(ETH_P_IPV6) || (void *)(ip6 + 1) > end)
		return TC_ACT_OK;
	hlen = outer_len(skb, ip6->nexthdr);
	if (!hlen)
		return TC_ACT_OK;
	// The helper call above invalidated the packet pointers.
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	ip6 = data + ETH_HLEN;
	if ((void *)(ip6 + 1) > end)
		return TC_ACT_OK;
	dst = ip6->daddr;
	src = ip6->saddr;
	id = bpf_map_lookup_elem(&endpoints, &dst);
	if (!id)
		return TC_ACT_OK; // not our tunnel: the kernel decides
	if (!bpf_map_lookup_elem(&peers, &src)) {
		count_drop(DROP_SPOOFED);
		return TC_ACT_SHOT;
	}
	if (bpf_skb_load_bytes(skb, ETH_HLEN + hlen, &inner, 1) || (inner >> 4) != 6 ||
	    skb->len < ETH_HLEN + hlen + IPV6_HLEN) {
		count_drop(DROP_MALFORMED);
		return TC_ACT_SHOT;
	}
	len = skb->len - ETH_HLEN;
	// FIXED_GSO: a GRO packet keeps its segment size (else it grows by
	// the header removed).
	if (bpf_skb_adjust_room(skb, -(__s32)hlen, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV6)) {
		count_drop(DROP_DECAP);
		return TC_ACT_SHOT;
	}
	count(*id, len, 1);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
