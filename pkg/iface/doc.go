// Package iface is mcoad's interface watcher: it turns netlink link and
// address events and Router Advertisements into the set of care-of
// addresses and BIDs that the Binding Update List engine registers
// (draft-ietf-monami6-multiplecoa-00 sections 2, 3.3, 5.1 and 5.5).
//
// Level-triggered: every event (netlink, RA, Hint, a resubscription after
// ENOBUFS) only schedules a full read of the links and addresses, paced by
// a debounce, a maximum delay and a rate limit; the read is turned into a
// Snapshot, and Updates delivers it when its CareOfs differ from the last.
//
// A care-of address is an IPv6 address of global scope, not tentative, not
// DAD-failed, not temporary (privacy addresses change daily), not
// deprecated unless Config.AllowDeprecated, not the home address and not
// inside the home prefix, on an interface that is up with carrier
// (operstate up, or unknown with IFF_LOWER_UP) and that no Rule excludes.
// Loopback, the daemon's own tunnels (Config.TunnelPrefix), TUN/TAP and
// other tunnels or link-less virtual devices (by link kind and hardware
// type) never carry one.
//
// BIDs (1..65535, never 0). BIDPerInterface: one BID per interface, which
// registers its most recently configured preferred address. BIDPerCoA: one
// BID per address. A BID is stable: an interface keeps it across flaps,
// renames (matched by MAC), re-creation (matched by name) and restarts
// (Config.StateDir/StateFile, written atomically; a corrupt file is set
// aside); an address keeps its BID likewise. Rule.BID fixes an interface's
// BID. Config.RotateBIDs draws new random BIDs at start (and every
// RotateInterval) for privacy (draft section 2).
//
// Home link (draft 3.3, 5.5). An interface is on the home link when it has
// a usable address that is the home address or inside the home prefix, or
// when a Router Advertisement on it announces the home prefix or comes
// from the home agent (its source, or the Router Address of RFC 6275 7.2).
// Such an interface has no care-of address; it is reported as one CareOf
// with HomeLink set, the interface's BID, and as Addr its address in the
// home prefix (the home address when present), or the home address when
// only an RA has told so far. The engine decides between returning home
// and keeping the foreign bindings.
//
// Router Advertisements: on every link that may carry a care-of address
// and has a link-local address, the watcher listens for RAs and sends a
// Router Solicitation when it starts listening (so on every link up or
// carrier gain). A new router or prefix is movement: it triggers a read and
// shows in Interface.Moves. Addresses still come from the kernel (SLAAC);
// the watcher never configures any.
//
// Priorities: the first Rule whose glob matches the interface name, or
// Config.DefaultPriority; metered interfaces are capped at
// Config.MeteredPriority; SetBIDPriority overrides.
package iface
