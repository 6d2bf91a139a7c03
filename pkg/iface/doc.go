// Package iface is mcoad's interface watcher: from the links and addresses
// of a netmon.Monitor and the Router Advertisements on each link, it
// derives the care-of addresses and BIDs that the Binding Update List
// engine registers (draft-ietf-monami6-multiplecoa-00 sections 2, 3.3, 5.1
// and 5.5), as Snapshots.
//
// Every change only schedules a full reading, paced by a debounce, a
// maximum delay and a rate limit (Config); Updates delivers a Snapshot when
// its CareOfs differ from the last.
//
// A care-of address is a global, usable IPv6 address (not tentative,
// DAD-failed, temporary, deprecated unless Config.AllowDeprecated, nor the
// home address or in the home prefix) on an interface up with carrier that
// no Rule excludes; loopback, tunnels and link-less virtual devices never
// carry one. BIDs are per interface or per address (BIDMode) and stable
// across flaps, renames, re-creation and restarts (Config.StateDir).
//
// An interface is on the home link (draft 3.3) when it has the home
// address or one in the home prefix, or hears an RA with the home prefix
// or from the home agent; it then shows as one CareOf with HomeLink set.
// A new router or prefix on a link is movement (Interface.Moves); a link
// back from a carrier loss waits for an RA (Config.ConfirmTimeout) before
// its addresses count again.
package iface
