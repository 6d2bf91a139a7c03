// Package bul is the mobile node's Binding Update List engine: it registers
// every care-of address with the home agent using the Binding Unique
// Identifier of draft-ietf-monami6-multiplecoa-00 (the "draft"), on top of
// RFC 6275.
//
// One goroutine (Engine.Run) owns the list. The interface watcher hands it
// the whole current set of care-of addresses (SetCareOfs, level-triggered):
// the engine reconciles its list against that set, the commands (Register,
// Deregister, DeregisterAll, ...) and what the home agent said, and sends what
// is due. The logic lives in a deterministic state machine (machine.go)
// that takes the time as an argument, so tests drive it with a fake clock
// and a fake transport, without goroutines.
//
// Decisions where the specifications leave room:
//
//   - Registration: bulk mode sends one BU from the highest-priority CoA with
//     one C-flag BID sub-option per binding that needs one (draft 5.3); a
//     refresh in bulk mode refreshes every binding, which aligns their
//     lifetimes. Individual mode sends one BU per binding from its own CoA
//     with a BID sub-option without flags (5.2). Every BU has A and H and
//     the Home Address option (source = CoA).
//   - One sequence number space per peer, shared by all BIDs; every
//     transmission, retransmissions included, takes a new number (RFC 6275
//     11.8). A BA to any of the last four transmissions of the same BU is
//     accepted. The Store keeps a reservation 64 numbers ahead, written once
//     per 64 BUs, so a restart continues after the last number sent.
//   - Retransmission: 1.5 s (InitialBindackTimeoutFirstReg) for a
//     registration while the home agent holds no binding of ours (it may run
//     DAD for the home address), 1 s otherwise, doubling to 32 s, then every
//     32 s for as long as the BU is wanted. At most 3 BUs per second (earliest
//     deadline first); what waits is delayed, never dropped.
//   - Refresh at 80% of the granted lifetime (or the Binding Refresh Advice
//     when shorter), counted from when the acknowledged BU was sent.
//   - Rejections (other than 135, 144-146) mark the binding failed and
//     retry it with a back-off of 1 s doubling to 32 s; a change of CoA or
//     priority retries at once. A BA without BID sub-option is taken as "the
//     peer does not know MCoA" only when it accepts (an error BA may omit
//     them, draft 6.3); 146 switches to individual mode; 145 re-registers
//     only the bindings whose per-BID status failed; 144 counts as accepted.
//     A BA without BID, or a Binding Error with status 2, falls back to a
//     single binding without BID for the primary CoA (BID 0 in the list).
//     Register returns to the configured mode.
//   - Removal: a lone binding goes with lifetime 0 and its BID without flags,
//     from its own CoA when it still has it, otherwise through the best
//     other CoA with the Alternate CoA option naming the old one (5.4, 5.6);
//     several at once with C-flag sub-options and lifetime 0; with other
//     updates in the same bulk BU, with C and R (5.3). With no CoA left
//     nothing can be sent: the entries stay "deregistering" until a CoA
//     returns (a returning CoA that the peer still holds costs no BU) or
//     the binding's lifetime has run out at the peer.
//   - Returning home (ReturnAll): the BU is sent from the home link with the
//     home address as its source and care-of address (RFC 6275 11.5.4), so
//     without a Home Address option, and without BID (draft 3.3): lifetime
//     0 removes every binding. Status 0 or 133 (no binding left) completes
//     it; only then does Status.HomeAddressUsable become true, since until
//     then the home agent defends the home address on the home link. A
//     Transport that implements InterfaceSender gets the home-link
//     interface. Nothing is registered while home. KeepForeign removes only
//     the home-link interface's binding, through a foreign CoA, and reports
//     that interface in Status.HomeLinkInterface (it must stay disabled);
//     with no foreign CoA left it returns home as ReturnAll does.
//   - BA validation (RFC 6275 11.7.3, draft 5.7): from the home agent; to
//     the source of the BU it answers, with a type 2 routing header holding
//     the home address (or to the home address itself, from home); with a
//     valid MN-HA authenticator when Auth is set; its sequence number that
//     of a BU in flight (except 135, which carries the peer's number); and
//     no BID that BU did not carry. Anything else is ignored and counted.
//
// Correspondent nodes (Config.Correspondents, cn.go): once the home
// agent holds a CoA's binding, the engine runs return routability for it
// (pkg/rr, owned by the engine goroutine: one HoTI per correspondent from
// the home address into the primary binding's tunnel, once the data plane
// reports it working through SetTunnels; one CoTI per CoA) and sends one BU per BID (never bulk), refreshed before its lifetime
// (at most 420 s) ends; 136-138 fetch the tokens again; a lost CoA or Stop
// de-registers with the home token alone. A BA without BID sub-option or a
// Binding Error with status 2 leaves one binding without BID for the
// primary CoA (RFC 6275). These entries have the role RoleCN. Without
// Config.DataPlane correspondents are not registered.
package bul
