package bul

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/mcoad/mcoad/pkg/proto"
)

// Auth authenticates the signalling with the home agent. nil in Config
// means no authentication option.
type Auth interface {
	// AddOption puts the authentication option, with room for its
	// authenticator, into an outgoing BU.
	AddOption(m *proto.Message)
	// Signer returns the signer of the outgoing packet p (its addresses
	// are known; the bytes are not yet). It is called on the engine
	// goroutine and used before the next call.
	Signer(p *proto.Packet) proto.Signer
	// Verify checks a received BA. It runs on the goroutine that calls
	// HandlePacket, while p.MHBytes is valid.
	Verify(p *proto.Packet) error
}

// ErrAuth is returned by MNHAAuth.Verify.
var ErrAuth = errors.New("bul: BA authentication failed")

// MNHAAuth is Auth with the MN-HA Mobility Message Authentication option of
// RFC 4285 (subtype 1, HMAC-SHA1-96 with a key shared with the home agent).
// The authenticator covers the care-of address (the BU's source, or its
// Alternate CoA; for a BA the address it is sent to), the home address and
// the Mobility Header.
type MNHAAuth struct {
	spi  uint32
	sign *proto.MNHA // engine goroutine only
	coa  netip.Addr
	hoa  netip.Addr

	mu     sync.Mutex // Verify may run on several receive goroutines
	verify *proto.MNHA
}

// NewMNHAAuth returns an MNHAAuth for the security association (spi, key).
func NewMNHAAuth(spi uint32, key []byte) (*MNHAAuth, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: empty MN-HA key", ErrInvalidConfig)
	}
	return &MNHAAuth{spi: spi, sign: proto.NewMNHA(key), verify: proto.NewMNHA(key)}, nil
}

func (a *MNHAAuth) AddOption(m *proto.Message) {
	m.Options.HasMNHAAuth = true
	m.Options.MNHASubtype = proto.AuthSubtypeMNHA
	m.Options.MNHASPI = a.spi
	m.Options.MNHAAuthData = nil // AppendMessage leaves room
}

// Signer keeps p's addresses and returns a itself, so that signing does not
// allocate.
func (a *MNHAAuth) Signer(p *proto.Packet) proto.Signer {
	a.coa = p.Src
	if p.MH.Options.AltCoA.IsValid() {
		a.coa = p.MH.Options.AltCoA
	}
	a.hoa = p.Src
	if p.HomeAddress.IsValid() {
		a.hoa = p.HomeAddress
	}
	return a
}

// Sign implements proto.Signer for the packet last given to Signer.
func (a *MNHAAuth) Sign(mh []byte, authOff int) error { return a.sign.Sign(mh, authOff, a.coa, a.hoa) }

func (a *MNHAAuth) Verify(p *proto.Packet) error {
	o := &p.MH.Options
	if !o.HasMNHAAuth || o.MNHASubtype != proto.AuthSubtypeMNHA {
		return fmt.Errorf("%w: no MN-HA authentication option", ErrAuth)
	}
	if o.MNHASPI != a.spi {
		return fmt.Errorf("%w: SPI %d, want %d", ErrAuth, o.MNHASPI, a.spi)
	}
	if p.MH.AuthOffset < 0 || p.MHBytes == nil {
		return fmt.Errorf("%w: no authenticator bytes", ErrAuth)
	}
	hoa := p.Dst
	if p.RoutingHome.IsValid() {
		hoa = p.RoutingHome
	}
	a.mu.Lock()
	ok := a.verify.Verify(p.MHBytes, p.MH.AuthOffset, p.Dst, hoa)
	a.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: wrong authenticator", ErrAuth)
	}
	return nil
}
