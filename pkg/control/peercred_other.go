//go:build !linux

package control

import (
	"errors"
	"net"
)

// peerOf is Linux-only (SO_PEERCRED); elsewhere every mutating call is
// refused.
func peerOf(net.Conn) (*Peer, error) {
	return nil, errors.New("peer credentials are not supported on this system")
}
