package bcache

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

// BUInput is one received Binding Update.
type BUInput struct {
	// Src is the IPv6 source: the care-of address unless the BU carries an
	// Alternate Care-of Address option (or BID sub-options with the C
	// flag). The BA goes back to it. Dst, the IPv6 destination, is only
	// informative: the caller accepts BUs for its own addresses.
	Src, Dst netip.Addr
	// HoA is the Home Address option's address; invalid when the packet
	// had none, and then Src is the home address (RFC 6275 9.5.1).
	HoA netip.Addr
	// Msg is the parsed BU (proto.ParseMessage).
	Msg *proto.Message
	// MH is the Mobility Header as received, for the MN-HA authenticator
	// at Msg.AuthOffset.
	MH []byte
	// ParseErr is ParseMessage's error: nil, a *proto.BIDError (the
	// message is otherwise complete; the bad sub-options get status 128),
	// or, in a mobile router's BU to a home agent, proto.ErrBadPrefix
	// (status 141). Any other error drops the BU.
	ParseErr error
	// Reject, when 128 or more, is a status the caller already decided
	// (a correspondent's return routability check: 136, 137 or 138). The
	// BU is answered with it and changes nothing.
	Reject proto.Status
}

// Result says what to do after ProcessBU.
type Result struct {
	// Send: send the BA that ProcessBU filled in.
	Send bool
	// Status is the BA's status (also set when Send is false).
	Status proto.Status
	// Dst is the BA's destination: the BU's source address (RFC 6275
	// 9.5.4). RoutingHome is the type 2 routing header's address (the home
	// address), invalid when Dst is the home address itself.
	Dst, RoutingHome netip.Addr
	// Signer fills the BA's MN-HA authenticator; nil without one. It is
	// valid until the next ProcessBU.
	Signer proto.Signer
	// Dropped says why the BU was discarded without answer.
	Dropped DropReason
	// Refused says why the BU was refused for want of authentication
	// (answered 129, or discarded with Dropped DropAuth).
	Refused Refusal
	// Changes lists what changed in the cache, in order (bindings past
	// their lifetime that the BU's home address still had come first). It
	// aliases a buffer reused by the next ProcessBU or Tick.
	Changes []Change
}

// routable: RFC 6275 9.5.1 wants home (and care-of) addresses that are
// unicast routable, so no multicast, loopback, link-local, unspecified or
// IPv4-mapped ones.
func routable(a netip.Addr) bool { return a.Is6() && !a.Is4In6() && a.IsGlobalUnicast() }

func (c *Cache) drop(r DropReason) Result {
	c.cnt.dropped[r]++
	return Result{Dropped: r, Changes: c.changes}
}

// bu is the Binding Update under processing, as every step reads it.
type bu struct {
	in  *BUInput
	m   *proto.Message
	hoa netip.Addr
	key [16]byte // hoa.As16(): the table key
	now int64
}

// ProcessBU processes one Binding Update as RFC 6275 9.5.1 and 10.3.1 and
// the draft's 6.2 say, and fills ba with the Binding Acknowledgement to
// send (6.3) when Result.Send is set. ba is reset first and its slices
// reused. The BU is only read.
//
// The steps: drop what cannot be answered (not a BU, malformed, addresses
// not routable), admit (role, authentication, home registration: a status
// that rejects without change, or a silent drop), rate limit, then decide
// (sequence number, prefixes, bindings) and answer.
func (c *Cache) ProcessBU(in *BUInput, ba *proto.Message) Result {
	c.changes = c.changes[:0]
	c.cnt.received++
	m := in.Msg
	if m == nil || m.Type != proto.TypeBU {
		return c.drop(DropNotBU)
	}
	badMNP, usable := c.usable(in)
	if !usable {
		return c.drop(DropMalformed)
	}
	hoa, d := homeAddress(in)
	if d != NotDropped {
		return c.drop(d)
	}
	u := bu{in: in, m: m, hoa: hoa, key: hoa.As16(), now: c.mono(c.clk.Now())}
	h := c.liveEntry(u.key, u.now)

	early, auth, d := c.admit(&u, h, badMNP)
	if d == NotDropped && !c.allow(h, u.now) {
		d = DropRateLimited
	}
	if d != NotDropped {
		res := c.drop(d)
		res.Refused = auth.refused
		return res
	}
	st, seq, life := c.decide(&u, h, early)
	return c.answer(&u, ba, st, seq, life, auth)
}

// usable says whether a BU that ParseMessage returned an error for is still
// processed: with a *proto.BIDError (the bad sub-options get status 128),
// and with a mobile router's bad prefix at a home agent (RFC 3963 6.1.2:
// answered 141, badMNP; the options after it are lost, so nothing else of
// the BU is used).
func (c *Cache) usable(in *BUInput) (badMNP, ok bool) {
	if in.ParseErr == nil {
		return false, true
	}
	var be *proto.BIDError
	switch {
	case errors.As(in.ParseErr, &be):
		return false, true
	case errors.Is(in.ParseErr, proto.ErrBadPrefix) && in.Msg.Flags&proto.FlagR != 0 && c.cfg.Role == RoleHA:
		return true, true
	}
	return false, false
}

// homeAddress is the BU's home address: the Home Address option's, or the
// source. RFC 6275 9.5.1 wants both unicast routable.
func homeAddress(in *BUInput) (netip.Addr, DropReason) {
	if !routable(in.Src) {
		return netip.Addr{}, DropBadSource
	}
	hoa := in.HoA
	if !hoa.IsValid() {
		hoa = in.Src
	}
	if !routable(hoa) {
		return netip.Addr{}, DropBadHoA
	}
	return hoa, NotDropped
}

// liveEntry is the home address's entry, nil when none. Bindings past their
// lifetime count for nothing (no 144, no sequence number to compare with),
// even before Tick runs, so they go first.
func (c *Cache) liveEntry(key [16]byte, now int64) *hoaState {
	h := c.tab.find(key)
	if h != nil {
		c.expire(h, now)
		h = c.tab.find(key)
	}
	return h
}

// decide returns the BA's status, sequence number and lifetime, applying
// the BU when it passed admission (early is 0) and its sequence number is
// new. Each BID sub-option's status is left in c.status.
func (c *Cache) decide(u *bu, h *hoaState, early proto.Status) (st proto.Status, seq, life uint16) {
	c.status = c.status[:0]
	for range u.m.Options.BIDs {
		c.status = append(c.status, 0)
	}
	st, seq = early, u.m.Sequence
	switch {
	case st != 0:
	case h != nil && !proto.SeqAfter(u.m.Sequence, h.lastSeq):
		// RFC 6275 9.5.1: not greater than the last accepted one. The BA
		// carries the last accepted number.
		st, seq = proto.StatusSequenceOutOfWindow, h.lastSeq
	default:
		st, life = c.apply(u, h)
	}
	if !st.Accepted() && st != c.prof.StatusBulkRegFail && st != c.prof.StatusMCoAConflict {
		// Rejected as a whole: every sub-option carries the status.
		for i := range c.status {
			c.status[i] = uint8(st)
		}
	}
	return st, seq, life
}

// apply changes the cache as an admitted, in-sequence BU asks.
func (c *Cache) apply(u *bu, h *hoaState) (proto.Status, uint16) {
	// RFC 3963 6.1: a registration with the R flag is checked before
	// anything changes; a de-registration needs no check.
	var mnps []netip.Prefix
	if c.cfg.Role == RoleHA && u.m.Flags&proto.FlagR != 0 && u.m.Lifetime != 0 {
		var st proto.Status
		if mnps, st = c.checkPrefixes(u.hoa, u.m); st != 0 {
			return st, 0
		}
	}
	var st proto.Status
	var life uint16
	if len(u.m.Options.BIDs) == 0 {
		st, life = c.plain(u, h)
	} else {
		st, life = c.withBIDs(u, h)
	}
	if life > 0 && c.tab.find(u.key) != nil {
		// Registered: a mobile router's prefixes are (re)set, and a
		// registration without R means a mobile host now (6.2).
		c.setPrefixes(u.key, mnps)
	}
	return st, life
}

// answer counts the outcome and fills the BA when one is due.
func (c *Cache) answer(u *bu, ba *proto.Message, st proto.Status, seq, life uint16, auth buAuth) Result {
	if st.Accepted() {
		c.cnt.accepted++
	} else {
		c.cnt.rejected[st]++
	}
	res := Result{Status: st, Dst: u.in.Src, Changes: c.changes, Refused: auth.refused}
	if u.in.Src != u.hoa {
		res.RoutingHome = u.hoa
	}
	// Draft 6.3: always answer a BU with a BID sub-option; otherwise RFC
	// 6275 9.5.4 and 10.3.1: when asked, and on rejection.
	res.Send = len(u.m.Options.BIDs) > 0 || u.m.Flags&proto.FlagA != 0 || !st.Accepted()
	if !res.Send {
		return res
	}
	c.cnt.bas++
	c.fillBA(ba, u.m, st, seq, life)
	if auth.mac != nil {
		res.Signer = c.authenticator(ba, auth, res.Dst, u.hoa)
	}
	return res
}

// addHoA creates the entry of a home address for its first binding.
func (c *Cache) addHoA(key [16]byte, n int, now int64) *hoaState {
	h := c.newHoA(key, n)
	// This BU's BA came out of the shared bucket; the home address's own
	// starts with one token used.
	if r := c.cfg.MaxBAPerSecondPerHoA; r > 0 {
		h.tat = now + int64(time.Second)/int64(r)
	}
	c.note(HoAUp, h, nil)
	return h
}

func (c *Cache) newBinding(m *proto.Message, coa netip.Addr, bid uint16, prio uint8, life uint16, now int64) binding {
	var f uint8
	if m.Flags&proto.FlagH != 0 {
		f |= flagHome
	}
	if m.Flags&proto.FlagR != 0 {
		f |= flagRouter
	}
	return binding{
		coa:     coa.As16(),
		expires: now + int64(life)*int64(lifetimeUnit),
		life:    life,
		bid:     bid,
		seq:     m.Sequence,
		prio:    prio,
		flags:   f,
	}
}

// put registers nb in h, updating the binding with the same BID.
func (c *Cache) put(h *hoaState, nb binding) {
	c.gen++ // a refresh too: new expiry and sequence number
	if j := findBID(h.binds, nb.bid); j >= 0 {
		old := h.binds[j]
		h.binds[j] = nb
		if old.coa != nb.coa || old.prio != nb.prio {
			c.note(Updated, h, &nb)
		}
		return
	}
	insertBinding(h, nb)
	c.n++
	c.note(Added, h, &nb)
}

func (c *Cache) grant(m *proto.Message) uint16 { return min(m.Lifetime, c.cfg.maxUnits()) }

// careOf is the care-of address of a BU without C flag: the Alternate
// Care-of Address option if present, else the source address.
func careOf(in *BUInput) netip.Addr {
	if a := in.Msg.Options.AltCoA; a.IsValid() {
		return a
	}
	return in.Src
}

// plain processes a BU without BID sub-option: RFC 6275, except that it
// replaces every binding of the home address (draft 6.2).
func (c *Cache) plain(u *bu, h *hoaState) (proto.Status, uint16) {
	m := u.m
	coa := careOf(u.in)
	if m.Lifetime == 0 || coa == u.hoa {
		// De-registration (RFC 6275 9.5.1: lifetime 0 or CoA = HoA).
		if h == nil {
			if c.cfg.Role == RoleHA {
				return proto.StatusNotHomeAgentForMN, 0 // RFC 6275 10.3.2
			}
			return proto.StatusAccepted, 0
		}
		for j := len(h.binds) - 1; j >= 0; j-- {
			c.removeAt(h, j)
		}
		c.dropIfEmpty(h)
		return proto.StatusAccepted, 0
	}
	if !routable(coa) {
		return proto.StatusUnspecified, 0
	}
	if h == nil {
		if c.n >= c.cfg.MaxBindings {
			return proto.StatusInsufficientResources, 0
		}
		h = c.addHoA(u.key, 1, u.now)
	}
	for j := len(h.binds) - 1; j >= 0; j-- {
		if h.binds[j].bid != 0 {
			c.removeAt(h, j)
		}
	}
	life := c.grant(m)
	c.put(h, c.newBinding(m, coa, 0, 0, life, u.now))
	h.lastSeq = m.Sequence
	c.schedule(h)
	return proto.StatusAccepted, life
}

// fillBA writes the BA: c.status holds each sub-option's status.
func (c *Cache) fillBA(ba *proto.Message, bu *proto.Message, st proto.Status, seq, life uint16) {
	ba.Reset()
	ba.Type = proto.TypeBA
	ba.PayloadProto = proto.ProtoNone
	ba.Status = st
	ba.Sequence = seq
	ba.Lifetime = life
	if c.cfg.KeyManagement && bu.Flags&proto.FlagK != 0 && st.Accepted() {
		ba.Flags |= proto.BAFlagK
	}
	if c.cfg.Role == RoleHA && bu.Flags&proto.FlagR != 0 {
		// RFC 3963 6.2: tells the mobile router that NEMO is supported.
		ba.Flags |= proto.BAFlagR
	}
	for i, b := range bu.Options.BIDs {
		s := c.status[i]
		if s == 0 {
			s = c.prof.BIDStatusAccepting
		}
		// Copied from the BU (draft 4.3.3) with the status in place of the
		// priority; a C flag without address or an R without C is not
		// echoed, so that the BA itself is well formed.
		nb := proto.BID{ID: b.ID, PrioStatus: s}
		if b.C && b.CoA.IsValid() {
			nb.C, nb.CoA, nb.R = true, b.CoA, b.R
		}
		ba.Options.BIDs = append(ba.Options.BIDs, nb)
	}
}

// checkPrefixes checks a mobile router's registration (RFC 3963 6.1): the
// home address must be configured as a mobile router (else 140); each
// Mobile Network Prefix option must be a well-formed prefix (else 141)
// inside the configured ones (else 142). Without options (implicit mode)
// the configured prefixes are registered.
func (c *Cache) checkPrefixes(hoa netip.Addr, m *proto.Message) ([]netip.Prefix, proto.Status) {
	var allowed []netip.Prefix
	ok := false
	if c.cfg.MobileRouters != nil {
		allowed, ok = c.cfg.MobileRouters(hoa)
	}
	if !ok || len(allowed) == 0 {
		return nil, proto.StatusMRNotAuthorized
	}
	opts := m.Options.Prefixes
	if len(opts) == 0 {
		return slices.Clone(allowed), 0
	}
	for _, p := range opts {
		if !p.IsValid() || p.Bits() == 0 || !p.Addr().Is6() || p.Addr().Is4In6() || p.Masked() != p {
			return nil, proto.StatusInvalidPrefix
		}
	}
	out := make([]netip.Prefix, 0, len(opts))
	for _, p := range opts {
		if !slices.ContainsFunc(allowed, func(a netip.Prefix) bool {
			return a.Bits() <= p.Bits() && a.Contains(p.Addr())
		}) {
			return nil, proto.StatusNotAuthorizedForPrefix
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, 0
}
