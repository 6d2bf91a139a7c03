// Package nm is mcoad's D-Bus side: its own service on the system bus, and
// a follower of NetworkManager's signals.
//
// The service (Serve) owns the well-known name BusName and exports, at
// ObjectPath, the interface Interface: methods that mirror the control API
// and a BindingChanged signal on every binding change. Who may call what is
// decided by the bus, from the policy file the package ships
// (/usr/share/dbus-1/system.d/org.mcoad.MobileNode1.conf): root and the
// control group may call everything, everyone may read.
//
//	Status() -> s status           the JSON object of GET /v1/status
//	Bindings() -> s bindings       the JSON array of GET /v1/bindings
//	Interfaces() -> s interfaces   the JSON array of GET /v1/interfaces
//	Register(aq bids)              POST /v1/register (empty: all bindings)
//	Deregister(aq bids, b all)     POST /v1/deregister (BIDs or all, not both)
//	SetPriority(q bid, y priority) POST /v1/priority
//	Reload()                       POST /v1/reload
//	Hint(s kind, s interface)      POST /v1/hint: "up", "down" or "connectivity"
//	signal BindingChanged(q bid, s state, b removed, s binding)
//
// Values are JSON strings rather than D-Bus dictionaries so that the two
// APIs cannot drift apart: one encoder, one set of field names (DESIGN.md
// section 6). Errors carry D-Bus names: org.freedesktop.DBus.Error.InvalidArgs
// for a bad request (a bad reload names file, line and key),
// org.mcoad.MobileNode1.Error.NotFound and .Conflict, and
// org.freedesktop.DBus.Error.Failed for the rest.
//
// The Watcher follows NetworkManager where it runs: each device's state
// (its StateChanged signal and State property) becomes an "up" or "down"
// hint, a change of the global Connectivity property a "connectivity"
// hint, and each device's Metered property is reported per interface
// name. It survives NetworkManager restarts (NameOwnerChanged) by reading
// everything again, and where NetworkManager does not run it says so once
// and waits for it.
package nm
