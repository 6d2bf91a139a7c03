// Package e2e is mcoad's end-to-end suite: every test builds its own lab
// network of namespaces (internal/lab), runs the real mcoa-ha and mcoad
// binaries in it and checks what they do, from the binding tables of both
// daemons down to the packets on the wire (tshark).
//
// The tests need root, ip, radvd, ping and tshark. Without them they skip,
// unless MCOA_E2E=1, which makes them mandatory. TestMain builds the
// binaries once with `go build`; MCOA_BIN=DIR uses the ones in DIR instead
// (e.g. bin/ after `make build`).
package e2e
