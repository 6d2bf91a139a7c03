package bcache

import "github.com/mcoad/mcoad/pkg/proto"

// DropReason says why a BU was discarded without answer.
type DropReason uint8

const (
	NotDropped DropReason = iota
	// DropNotBU: no message, or not a Binding Update.
	DropNotBU
	// DropMalformed: the parser failed on more than a BID sub-option.
	DropMalformed
	// DropBadSource: the IPv6 source is not a global unicast address.
	DropBadSource
	// DropBadHoA: the home address is not a global unicast address (RFC
	// 6275 9.5.1: such packets MUST be dropped).
	DropBadHoA
	// DropNotHome: a BU without H flag at a home agent for a home address
	// it holds no binding for: it would need return routability, which a
	// home agent's cache does not do (the caller routes such BUs to the
	// correspondent cache).
	DropNotHome
	// DropAuth: the MN-HA authenticator is missing or wrong (RFC 4285).
	DropAuth
	// DropRateLimited: over MaxBAPerSecondPerHoA or MaxBAPerSecondNew.
	DropRateLimited
	numDropReasons
)

var dropNames = [...]string{"", "not-bu", "malformed", "bad-source", "bad-hoa", "not-home-registration", "auth", "rate-limited"}

func (d DropReason) String() string {
	if int(d) < len(dropNames) {
		return dropNames[d]
	}
	return "drop?"
}

type counters struct {
	received, accepted, bas, brrs, expired uint64
	rejected                               [256]uint64
	dropped                                [numDropReasons]uint64
	refused                                [numRefusals]uint64
}

// Counters are the cache's statistics since New.
type Counters struct {
	Received uint64 `json:"received"` // BUs given to ProcessBU
	// Accepted counts BUs answered (or, without A flag, not answered)
	// with a status below 128.
	Accepted uint64 `json:"accepted"`
	// Rejected counts BUs by BA status 128 and up; 144 and 145 are here
	// even though they (partly) changed the cache.
	Rejected map[proto.Status]uint64 `json:"rejected"`
	// Dropped counts BUs discarded without answer, by reason name.
	Dropped     map[string]uint64 `json:"dropped"`
	RateLimited uint64            `json:"rate_limited"` // = Dropped["rate-limited"]
	// Refused counts BUs refused for want of authentication, by
	// Refusal name (no_key ones are also in Rejected[129], the others in
	// Dropped["auth"]).
	Refused  map[string]uint64 `json:"refused"`
	BAs      uint64            `json:"bas"`     // BAs returned to send
	BRRs     uint64            `json:"brrs"`    // BRRs returned by Tick
	Expired  uint64            `json:"expired"` // bindings removed at expiry
	Bindings int               `json:"bindings"`
	HoAs     int               `json:"hoas"`
}

// Counters returns a snapshot of the statistics.
func (c *Cache) Counters() Counters {
	out := Counters{
		Received:    c.cnt.received,
		Accepted:    c.cnt.accepted,
		Rejected:    map[proto.Status]uint64{},
		Dropped:     map[string]uint64{},
		Refused:     map[string]uint64{},
		RateLimited: c.cnt.dropped[DropRateLimited],
		BAs:         c.cnt.bas,
		BRRs:        c.cnt.brrs,
		Expired:     c.cnt.expired,
		Bindings:    c.n,
		HoAs:        c.tab.n,
	}
	for s, n := range c.cnt.rejected {
		if n > 0 {
			out.Rejected[proto.Status(s)] = n
		}
	}
	for d, n := range c.cnt.dropped {
		if n > 0 {
			out.Dropped[DropReason(d).String()] = n
		}
	}
	for r, n := range c.cnt.refused {
		if n > 0 {
			out.Refused[Refusal(r).String()] = n
		}
	}
	return out
}
