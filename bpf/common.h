// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// What the tunnel programs of the mobile node (tunnel.c) and the home agent
// (home.c) share: packet layouts, the endpoint, counter and drop maps, and
// the outer-header walk, checks and removal of decapsulation.

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// Debian 12's uapi headers predate these (kernel 6.3); the values are ABI.
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV6
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

// tc: TC_ACT_UNSPEC (tcx: TCX_NEXT) hands a packet that is not ours to the
// next program, or to the stack; TC_ACT_OK would end the chain.
#define PASS TC_ACT_UNSPEC

#define ETH_HLEN 14
#define ETH_P_IPV6 0x86DD
#define IPV6_HLEN 40
#define NEXTHDR_HOP 0
#define NEXTHDR_TCP 6
#define NEXTHDR_UDP 17
#define NEXTHDR_IPV6 41
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_ICMP 58
#define NEXTHDR_DEST 60
#define NEXTHDR_MH 135
#define MAX_EXT_HDRS 4
#define TUNNEL_HOP_LIMIT 64
#define ECN_CE 3
#define ECN_ECT1 1
#define ECN_ECT0 2

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

// Counters of a tunnel (per CPU; the daemon sums them).
struct stats {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
};

// Why a packet was dropped: the index into drops. Kept in step with
// pkg/bpftun's Drop constants.
enum drop_reason {
	DROP_NO_TUNNEL,	 // encap: no tunnel (mobile node) or binding (home agent)
	DROP_MALFORMED,	 // no IPv6 packet inside, or truncated headers
	DROP_SPOOFED,	 // decap: the outer source may not send this packet
	DROP_ENCAP,	 // the kernel refused to push the header
	DROP_DECAP,	 // the kernel refused to remove the header
	DROP_ECN,	 // RFC 6040: congestion marked on a packet that is not ECN-capable
	DROP_NOT_HOME,	 // route optimisation: a type 2 routing header for another home address
	DROP_NO_BINDING, // a Home Address option no binding covers (RFC 6275 9.3.1)
	DROP_MAX,
};

// Local tunnel endpoints (care-of addresses, the home agent's address):
// address -> tunnel id.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct in6);
	__type(value, __u32);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline int same(const struct in6 *a, const struct in6 *b)
{
	const __u64 *x = (const __u64 *)a->a, *y = (const __u64 *)b->a;

	return x[0] == y[0] && x[1] == y[1];
}

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

// The headers route optimisation inserts (RFC 6275 6.3, 6.4) are 24 octets.
#define RO_EXT_LEN 24

// ro_insertable: route optimisation leaves alone, as the userspace path
// does, a packet whose Hop-by-Hop header must stay first, whose routing or
// destination options headers are the sender's, or that is signaling
// (pkg/mhsock's).
static __always_inline int ro_insertable(__u8 nexthdr)
{
	return nexthdr != NEXTHDR_HOP && nexthdr != NEXTHDR_ROUTING && nexthdr != NEXTHDR_DEST &&
	       nexthdr != NEXTHDR_MH;
}

// insert_ro_header puts hdr (RO_EXT_LEN octets) right behind the IPv6
// header, announced as nh, sets the payload length to plen and the address
// at addr_off (8: source, 24: destination) to addr. Growing shrinks a GSO
// packet's segment size by as much, so its segments still fit. 0 on
// success; the failure is counted.
static __always_inline int insert_ro_header(struct __sk_buff *skb, const void *hdr, __u8 nh,
					    __be16 plen, __u32 addr_off, const struct in6 *addr)
{
	if (bpf_skb_adjust_room(skb, RO_EXT_LEN, BPF_ADJ_ROOM_NET, 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + IPV6_HLEN, hdr, RO_EXT_LEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + 6, &nh, 1, 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + 4, &plen, 2, 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + addr_off, addr, sizeof(*addr), 0)) {
		count_drop(DROP_ENCAP);
		return -1;
	}
	return 0;
}

// outer_header fills the outer header of a tunnel packet for inner: the
// traffic class copied (RFC 6040 normal mode), a flow label of the tunnel's
// own (RFC 2473 6.3: the packet hash keeps an inner flow on one outer flow).
static __always_inline void outer_header(struct __sk_buff *skb, struct ip6hdr *out,
					 const struct ip6hdr *in, __u32 len)
{
	__u32 flow = bpf_get_hash_recalc(skb) & 0xfffff;

	out->vtc = 0x60 | (in->vtc & 0x0f);
	out->tcfl = (in->tcfl & 0xf0) | (flow >> 16);
	out->fl = bpf_htons(flow & 0xffff);
	// The kernel does not set it for IPv6; a GSO packet's segments get
	// their own when segmented.
	out->payload_len = bpf_htons(len > 0xffff ? 0 : len);
	out->nexthdr = NEXTHDR_IPV6;
	out->hop_limit = TUNNEL_HOP_LIMIT;
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

// tunnel_packet finds an IPv6-in-IPv6 packet to one of our endpoints: its
// outer header length, addresses and endpoint id. 0 when it is not one.
static __always_inline __u32 tunnel_packet(struct __sk_buff *skb, struct in6 *src,
					   struct in6 *dst, __u32 *id)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ip6hdr *ip6 = data + ETH_HLEN;
	__u32 hlen, *ep;

	if (skb->protocol != bpf_htons(ETH_P_IPV6) || (void *)(ip6 + 1) > end)
		return 0;
	hlen = outer_len(skb, ip6->nexthdr);
	if (!hlen)
		return 0;
	// The helper calls invalidated the packet pointers.
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	ip6 = data + ETH_HLEN;
	if ((void *)(ip6 + 1) > end)
		return 0;
	*dst = ip6->daddr;
	*src = ip6->saddr;
	ep = bpf_map_lookup_elem(&endpoints, dst);
	if (!ep)
		return 0; // not our tunnel: the kernel decides
	*id = *ep;
	return hlen;
}

// inner_ok checks that an IPv6 header follows the outer one at hlen.
static __always_inline int inner_ok(struct __sk_buff *skb, __u32 hlen, struct ip6hdr *inner)
{
	if (skb->len < ETH_HLEN + hlen + IPV6_HLEN ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + hlen, inner, sizeof(*inner)) || (inner->vtc >> 4) != 6) {
		count_drop(DROP_MALFORMED);
		return 0;
	}
	return 1;
}

// remove_outer applies RFC 6040's decapsulation of ECN and strips the outer
// header; the caller returns TC_ACT_SHOT when it fails (counted).
static __always_inline int remove_outer(struct __sk_buff *skb, __u32 hlen, const struct ip6hdr *inner)
{
	__u8 outer_tcfl, tcfl = inner->tcfl;
	__u8 in, out;

	if (bpf_skb_load_bytes(skb, ETH_HLEN + 1, &outer_tcfl, 1)) {
		count_drop(DROP_MALFORMED);
		return 0;
	}
	in = (tcfl >> 4) & 3;
	out = (outer_tcfl >> 4) & 3;
	if (out == ECN_CE && in == 0) {
		count_drop(DROP_ECN);
		return 0;
	}
	if (out == ECN_CE || (out == ECN_ECT1 && in == ECN_ECT0)) {
		tcfl = (tcfl & ~0x30) | (out << 4);
		if (bpf_skb_store_bytes(skb, ETH_HLEN + hlen + 1, &tcfl, 1, BPF_F_RECOMPUTE_CSUM)) {
			count_drop(DROP_DECAP);
			return 0;
		}
	}
	// FIXED_GSO: a GRO packet keeps its segment size (else it grows by the
	// header removed).
	if (bpf_skb_adjust_room(skb, -(__s32)hlen, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV6)) {
		count_drop(DROP_DECAP);
		return 0;
	}
	return 1;
}
