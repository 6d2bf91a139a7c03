// Package tun is the mobile node's userspace backend, for kernels without
// ip6_tunnel: BID b's device mcoab<b> and the home device are TUN devices.
// One goroutine per BID reads what the kernel routes into mcoab<b>,
// encapsulates it (RFC 2473) and sends it on a raw socket bound to the
// BID's interface with the bypass mark, so no policy rule routes it back
// into a tunnel; one goroutine receives every IPv6-in-IPv6 packet, keeps
// those from the home agent to a known CoA for the home address (or a
// mobile network) and writes them into their BID's device. With TUN
// offloads a bulk flow costs one read or write per 64 KiB. It also carries
// route optimisation (dataplane.RouteOptimizer) and keeps its devices
// across a restart (dataplane.Keeper).
package tun

import "github.com/mcoad/mcoad/pkg/dataplane"

// Name is the backend's [dataplane] backend value.
const Name = "tun"

// Driver is the userspace backend for package backends.
var Driver = dataplane.Driver{Name: Name, New: New}

// New starts the userspace backend; cfg is resolved
// (dataplane.Config.Resolve).
func New(cfg dataplane.Config) (dataplane.Backend, error) { return newTUNBackend(cfg) }
