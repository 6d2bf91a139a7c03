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

// Refusal says why a home agent refused a BU for want of authentication.
type Refusal uint8

const (
	NotRefused Refusal = iota
	// RefusedNoKey: Config.RequireAuth and the home address has no MN-HA
	// key; answered 129.
	RefusedNoKey
	// RefusedUnauthenticated: the home address has a key and the BU
	// carries no MN-HA option; discarded.
	RefusedUnauthenticated
	// RefusedBadAuth: the BU's MN-HA option is not last, names another
	// SPI or has a wrong authenticator; discarded.
	RefusedBadAuth
	numRefusals
)

var refusalNames = [...]string{"", "no_key", "unauthenticated", "bad_auth"}

func (r Refusal) String() string {
	if int(r) < len(refusalNames) {
		return refusalNames[r]
	}
	return "refused?"
}

// verify checks a BU's MN-HA option (RFC 4285 5): present, last (the parser
// sets AuthOffset for the last authentication option), subtype MN-HA, the
// association's SPI, and a right authenticator over the care-of address the
// BU registers (its source or the Alternate CoA) and the home address.
func (c *Cache) verify(in *BUInput, spi uint32, mac *proto.MNHA, hoa netip.Addr) Refusal {
	o := &in.Msg.Options
	if !o.HasMNHAAuth {
		return RefusedUnauthenticated
	}
	if o.MNHASubtype != proto.AuthSubtypeMNHA || o.MNHASPI != spi ||
		len(o.MNHAAuthData) != proto.AuthenticatorLen || in.Msg.AuthOffset < 0 ||
		!mac.Verify(in.MH, in.Msg.AuthOffset, careOf(in), hoa) {
		return RefusedBadAuth
	}
	return NotRefused
}

// baSigner is the proto.Signer of one BA: the address it is sent to and the
// home address (RFC 4285 5.1). The Cache reuses one.
type baSigner struct {
	mac      *proto.MNHA
	coa, hoa netip.Addr
}

func (s *baSigner) Sign(mh []byte, authOff int) error { return s.mac.Sign(mh, authOff, s.coa, s.hoa) }
