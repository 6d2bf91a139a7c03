// Package policy steers the mobile node's traffic onto its bindings: flow
// policies ([[policy]], and those added through the control API) become
// fwmarks, one nftables table and a handful of ip rules; pkg/dataplane owns
// the tunnel devices mcoab<BID> and the per-BID routing tables TableBase+BID
// whose only route is "default dev mcoab<BID> src HoA".
//
// Everything is level-triggered: Engine.Apply is handed the whole State (the
// home address, the bindings alive now, the policies) after every change and
// makes the kernel match it, putting back whatever someone else removed.
//
// Marks. Config.Mask selects the fwmark bits mcoad owns (default
// 0xff000000, clear of tailscale's 0xff0000); the field under the mask holds
// a small number k, and a mark is Mark + k in that field (wrapping, never
// 0). k = 0, the value Mark itself, is the bypass mark that pkg/dataplane
// puts on encapsulated packets: no rule ever sends it into a tunnel. Every
// alive BID b gets a slot k (k = b when it is free, so with the defaults BID
// 1 is 0x4e000000, BID 2 0x4f000000), kept while the engine lives.
//
// ip rules, all tagged with protocol 0x4d (RTPROT "mcoad"), from
// Config.Priority P (default 5100, tailscale starts at 5210):
//
//	P      fwmark Mark/Mask lookup main          bypass: mcoad's own packets
//	P      from <CoA> lookup main                each binding's care-of address
//	P+10   fwmark mark(b)/Mask lookup TableBase+b  each alive BID
//	P+20+i from HoA lookup TableBase+b_i         alive BIDs, best priority first
//	P+80   from HoA unreachable                  home-address traffic never leaks
//	P+90   fwmark 0/Mask iif lo lookup main suppress_prefixlength 0
//	P+91   fwmark 0/Mask iif lo lookup TableBase+best  unbound sockets get the HoA
//
// A table whose tunnel device is gone is empty and the lookup falls through
// to the next rule, so traffic moves before the rules are rewritten. The
// last two rules make the home address the source of local sockets that do
// not bind one (the route's preferred source), except towards destinations
// the main table knows more precisely than by its default route (the access
// links); Config.NoDefaultSource leaves those sockets alone.
//
// nftables, table ip6 "mcoad", rebuilt whole in one batch when it changes:
//
//	chain output (type route, hook output, priority mangle)
//	  meta mark & Mask != 0 accept                 bypass, or chosen by the socket
//	  <policy match> meta mark |= mark(b) ct mark = ct mark &^ Mask | mark(b) accept
//	  ct mark & Mask == mark(b) meta mark |= mark(b) accept   for each alive b
//	chain postrouting (type filter, hook postrouting, priority mangle)
//	  oifname "mcoab*" tcp flags syn / syn,rst tcp option maxseg size set rt mtu
//
// b is the first alive entry of the policy's prefer list (a BID, or the best
// alive binding on an interface matching the pattern). A policy none of whose
// preferences is alive gets no rule: its flows follow the priorities. Policy
// rules come before the connection-mark restore, so a flow a policy matches
// moves to the next preferred BID the moment its BID dies, and back when the
// preferred one returns. A packet no policy matches keeps its connection's
// BID (the ct mark the policy rule saved) as long as that BID lives: TCP
// resets sent for a closed socket stay with their connection, and a flow
// whose policy is deleted stays where it is while new flows follow the
// priorities. Marks of dead BIDs are never restored. A route chain re-routes
// a packet whose mark changed, and the clamp makes TCP fit the tunnel even
// when a mark moved a connection onto a tunnel with a smaller MTU than the
// one its SYN was sized for.
//
// A mobile router (State.Networks, NEMO) adds, for each mobile network
// prefix N and ingress interface I: "from N iif I lookup TableBase+b_i"
// next to each home-address rule, "from N iif I unreachable" at P+80 (kept
// while no binding is alive), a prerouting chain that jumps to a regular
// chain "mobile" (the policies without user or cgroup, and the restores) for
// packets from N on I, and a forward chain: I <-> mcoab* accepted, other
// forwarding to or from I or an uplink dropped.
//
// Watch reports deletions of ip rules and of routes in the BIDs' tables, so
// that the caller can Apply again at once; Apply also checks the nftables
// table (present, with the right number of rules in each chain).
//
// Ownership: ip rules by their protocol, the nftables table by its name.
// New removes what a mcoad that did not stop cleanly left behind; Close, and
// Cleanup (mcoad -cleanup), remove everything.
package policy
