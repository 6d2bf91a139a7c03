// Package control is the control API of mcoad and mcoa-ha: HTTP/1.1 with JSON
// bodies on a unix socket, versioned under /v1/ (DESIGN.md section 6), so
// that `curl --unix-socket /run/mcoad/mcoad.sock http://mcoad/v1/status`
// works as well as mcoactl does.
//
// The server is generic over the daemon: it serves the routes of the
// backends it is given (MNBackend for mcoad, HABackend for mcoa-ha), an
// event stream fed through an Events broker, and Prometheus metrics.
// Reads are open to anyone who can connect to the socket; mutating calls
// are allowed only to root and to members of the control group, checked
// with the peer's credentials (SO_PEERCRED) on every connection.
//
// Client is the typed client mcoactl uses; the JSON types in types.go are
// shared by both sides.
package control
