package bcache

import (
	"net/netip"

	"github.com/mcoad/mcoad/pkg/proto"
)

// MNHAKey is an RFC 4285 MN-HA security association.
type MNHAKey struct {
	SPI uint32
	Key []byte
	// MAC, when set, computes the authenticators instead of a fresh
	// proto.NewMNHA(Key) per message, so that checking does not allocate.
	// It then belongs to the cache's goroutine (proto.MNHA is not safe for
	// concurrent use).
	MAC *proto.MNHA
}

func (k *MNHAKey) mac() *proto.MNHA {
	if k.MAC != nil {
		return k.MAC
	}
	return proto.NewMNHA(k.Key)
}

// verify checks a BU's MN-HA option (RFC 4285 5): present, last (the parser
// sets AuthOffset for the last authentication option), subtype MN-HA, the
// association's SPI, and a right authenticator over the care-of address the
// BU registers (its source or the Alternate CoA) and the home address.
func (c *Cache) verify(in *BUInput, spi uint32, mac *proto.MNHA, hoa netip.Addr) bool {
	o := &in.Msg.Options
	if !o.HasMNHAAuth || o.MNHASubtype != proto.AuthSubtypeMNHA || o.MNHASPI != spi ||
		len(o.MNHAAuthData) != proto.AuthenticatorLen || in.Msg.AuthOffset < 0 {
		return false
	}
	return mac.Verify(in.MH, in.Msg.AuthOffset, careOf(in), hoa)
}

// baSigner is the proto.Signer of one BA: the address it is sent to and the
// home address (RFC 4285 5.1). The Cache reuses one.
type baSigner struct {
	mac      *proto.MNHA
	coa, hoa netip.Addr
}

func (s *baSigner) Sign(mh []byte, authOff int) error { return s.mac.Sign(mh, authOff, s.coa, s.hoa) }
