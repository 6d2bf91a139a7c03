// Package config loads, validates and watches the TOML configuration of the
// two daemons: mcoad (type MN) and mcoa-ha (type HA), as DESIGN.md section 6
// describes.
//
// Every problem is reported, not just the first, as an Errors value whose
// entries name the file, the line and the key:
//
//	/etc/mcoad/mcoad.toml:7: mobile_node.home_address: "2001:db8::zz" is not an IPv6 address
//
// Keys of array-of-tables elements carry a zero-based index, as in
// interface[1].priority or home_agent.mn[0].key. Unknown keys are errors, so a
// misspelt key is never silently ignored.
//
// The parsed structs are plain values (comparable where they hold no slices)
// so that a hot reload can tell what changed with DiffMN and DiffHA; Watch
// reports changes of the file on disk.
package config
