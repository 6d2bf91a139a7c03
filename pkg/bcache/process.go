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

// ProcessBU processes one Binding Update as RFC 6275 9.5.1 and 10.3.1 and
// the draft's 6.2 say, and fills ba with the Binding Acknowledgement to
// send (6.3) when Result.Send is set. ba is reset first and its slices
// reused. The BU is only read.
func (c *Cache) ProcessBU(in *BUInput, ba *proto.Message) Result {
	c.changes = c.changes[:0]
	c.cnt.received++
	now := c.mono(c.clk.Now())
	m := in.Msg
	if m == nil || m.Type != proto.TypeBU {
		return c.drop(DropNotBU)
	}
	badMNP := false
	if in.ParseErr != nil {
		var be *proto.BIDError
		switch {
		case errors.As(in.ParseErr, &be):
		case errors.Is(in.ParseErr, proto.ErrBadPrefix) && m.Flags&proto.FlagR != 0 && c.cfg.Role == RoleHA:
			// RFC 3963 6.1.2: a mobile router's prefix length over 128
			// is answered 141, not dropped. The options after it are
			// lost, so nothing else of the BU is used.
			badMNP = true
		default:
			return c.drop(DropMalformed)
		}
	}
	if !routable(in.Src) {
		return c.drop(DropBadSource)
	}
	hoa := in.HoA
	if !hoa.IsValid() {
		hoa = in.Src
	}
	if !routable(hoa) {
		return c.drop(DropBadHoA)
	}
	key := hoa.As16()
	h := c.tab.find(key)
	if h != nil {
		// Bindings past their lifetime count for nothing (no 144, no
		// sequence number to compare with), even before Tick runs.
		c.expire(h, now)
		h = c.tab.find(key)
	}

	res := Result{Dst: in.Src}
	if in.Src != hoa {
		res.RoutingHome = hoa
	}
	home := m.Flags&proto.FlagH != 0
	var early proto.Status
	switch c.cfg.Role {
	case RoleHA:
		early = c.serves(hoa)
	case RoleCN:
		if home {
			early = proto.StatusHomeRegNotSupported // RFC 6275 9.5.1
		}
	}
	var spi uint32
	var mac *proto.MNHA // set when the BU was authenticated
	refused := NotRefused
	if early == 0 && c.cfg.Role == RoleHA {
		var k MNHAKey
		ok := false
		if c.cfg.MNHAKeys != nil {
			k, ok = c.cfg.MNHAKeys(hoa)
		}
		switch {
		case ok:
			mac, spi = k.mac(), k.SPI
			if r := c.verify(in, spi, mac, hoa); r != NotRefused {
				// RFC 4285: a BU that the security association does not
				// authenticate is silently discarded; an answer could
				// not be authenticated by the mobile node either.
				c.cnt.refused[r]++
				res := c.drop(DropAuth)
				res.Refused = r
				return res
			}
		case c.cfg.RequireAuth:
			// No security association at all: a matter of policy, not
			// of a forged message, so the sender is told (129, RFC 6275
			// 6.1.8); a mobile node without its key then shows why it
			// is not registered. 146 (RFC 4285's MIPV6-AUTH-FAIL) is
			// BULK REGISTRATION NOT SUPPORT in the draft-00 profile.
			// It changes nothing and the BA is not signed.
			refused, early = RefusedNoKey, proto.StatusAdminProhibited
			c.cnt.refused[refused]++
		}
	}
	if early == 0 && c.cfg.Role == RoleHA && !home {
		if h == nil {
			return c.drop(DropNotHome)
		}
		early = proto.StatusRegTypeChangeDisallowed // RFC 6275 9.5.1
	}
	if early == 0 && in.Reject >= 128 {
		early = in.Reject
	}
	if early == 0 && badMNP {
		early = proto.StatusInvalidPrefix
	}
	if !c.allow(h, now) {
		res := c.drop(DropRateLimited)
		res.Refused = refused
		return res
	}

	st, seq, life := early, m.Sequence, uint16(0)
	c.status = c.status[:0]
	for range m.Options.BIDs {
		c.status = append(c.status, 0)
	}
	switch {
	case st != 0:
	case h != nil && !proto.SeqAfter(m.Sequence, h.lastSeq):
		// RFC 6275 9.5.1: not greater than the last accepted one. The BA
		// carries the last accepted number.
		st, seq = proto.StatusSequenceOutOfWindow, h.lastSeq
	default:
		// RFC 3963 6.1: a registration with the R flag is checked before
		// anything changes; a de-registration needs no check.
		router := c.cfg.Role == RoleHA && m.Flags&proto.FlagR != 0
		var mnps []netip.Prefix
		if router && m.Lifetime != 0 {
			mnps, st = c.checkPrefixes(hoa, m)
		}
		if st != 0 {
			break
		}
		if len(m.Options.BIDs) == 0 {
			st, life = c.plain(in, hoa, key, h, now)
		} else {
			st, life = c.withBIDs(in, hoa, key, h, now)
		}
		if life > 0 && c.tab.find(key) != nil {
			// Registered: a mobile router's prefixes are (re)set, and a
			// registration without R means a mobile host now (6.2).
			c.setPrefixes(key, mnps)
		}
	}
	if !st.Accepted() && st != c.prof.StatusBulkRegFail && st != c.prof.StatusMCoAConflict {
		// Rejected as a whole: every sub-option carries the status.
		for i := range c.status {
			c.status[i] = uint8(st)
		}
	}

	if st.Accepted() {
		c.cnt.accepted++
	} else {
		c.cnt.rejected[st]++
	}
	res.Status = st
	res.Changes = c.changes
	res.Refused = refused
	// Draft 6.3: always answer a BU with a BID sub-option; otherwise RFC
	// 6275 9.5.4 and 10.3.1: when asked, and on rejection.
	res.Send = len(m.Options.BIDs) > 0 || m.Flags&proto.FlagA != 0 || !st.Accepted()
	if !res.Send {
		return res
	}
	c.cnt.bas++
	c.fillBA(ba, m, st, seq, life)
	if mac != nil {
		ba.Options.HasMNHAAuth = true
		ba.Options.MNHASubtype = proto.AuthSubtypeMNHA
		ba.Options.MNHASPI = spi
		c.authBuf = [proto.AuthenticatorLen]byte{}
		ba.Options.MNHAAuthData = c.authBuf[:]
		c.signer = baSigner{mac: mac, coa: res.Dst, hoa: hoa}
		res.Signer = &c.signer
	}
	return res
}

// serves returns 0 for a home address the home agent serves, else the
// RFC 6275 10.3.1 status.
func (c *Cache) serves(hoa netip.Addr) proto.Status {
	for _, p := range c.cfg.Serve {
		if p.Contains(hoa) {
			return 0
		}
	}
	if c.cfg.HomePrefix.IsValid() && c.cfg.HomePrefix.Contains(hoa) {
		return proto.StatusNotHomeAgentForMN
	}
	return proto.StatusNotHomeSubnet
}

// allow is the rate limit (GCRA with a burst of one second's worth): per
// home address when it has an entry, one shared bucket otherwise.
func (c *Cache) allow(h *hoaState, now int64) bool {
	if h != nil {
		return gcra(&h.tat, now, c.cfg.MaxBAPerSecondPerHoA)
	}
	return gcra(&c.newTAT, now, c.cfg.MaxBAPerSecondNew)
}

func gcra(tat *int64, now int64, rate int) bool {
	if rate < 0 {
		return true
	}
	interval := int64(time.Second) / int64(rate)
	t := max(*tat, now)
	if t-now > interval*int64(rate-1) {
		return false
	}
	*tat = t + interval
	return true
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
func (c *Cache) plain(in *BUInput, hoa netip.Addr, key [16]byte, h *hoaState, now int64) (proto.Status, uint16) {
	m := in.Msg
	coa := careOf(in)
	if m.Lifetime == 0 || coa == hoa {
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
		h = c.addHoA(key, 1, now)
	}
	for j := len(h.binds) - 1; j >= 0; j-- {
		if h.binds[j].bid != 0 {
			c.removeAt(h, j)
		}
	}
	life := c.grant(m)
	c.put(h, c.newBinding(m, coa, 0, 0, life, now))
	h.lastSeq = m.Sequence
	c.schedule(h)
	return proto.StatusAccepted, life
}

// withBIDs processes a BU with BID sub-options (draft 6.2), leaving each
// sub-option's status in c.status.
func (c *Cache) withBIDs(in *BUInput, hoa netip.Addr, key [16]byte, h *hoaState, now int64) (proto.Status, uint16) {
	m := in.Msg
	bids := m.Options.BIDs
	for _, b := range bids {
		if b.C && !c.cfg.BulkRegistration {
			return c.prof.StatusBulkNotSupported, 0
		}
	}
	incompliant := c.prof.BIDStatusIncompliant
	for i, b := range bids {
		ok := b.Err == nil && b.ID != 0 &&
			(!b.R || b.C) && // R only with C (draft 6.2)
			(!b.C || b.CoA.IsValid()) && // C needs a CoA
			(len(bids) == 1 || b.C) // several bindings only in bulk (4.3.1)
		for k := range i {
			if bids[k].ID == b.ID {
				ok = false // the same BID twice
			}
		}
		if ok && m.Lifetime != 0 && !b.R {
			if a := bidCoA(in, &b); a != hoa && !routable(a) {
				ok = false
			}
		}
		if !ok {
			c.status[i] = incompliant
		}
	}

	life := c.grant(m)
	var failed, good, registered int
	var failSt uint8
	fail := func(i int, st uint8) {
		c.status[i] = st
		if failed > 0 && failSt != st {
			failSt = incompliant // mixed reasons
		} else {
			failSt = st
		}
		failed++
	}
	for i := range bids {
		b := &bids[i]
		if c.status[i] != 0 {
			c.status[i] = 0
			fail(i, incompliant)
			continue
		}
		coa := bidCoA(in, b)
		if m.Lifetime == 0 || b.R || coa == hoa {
			j := -1
			if h != nil {
				j = findBID(h.binds, b.ID)
			}
			switch {
			case j >= 0:
				c.removeAt(h, j)
				good++
			case b.R && m.Lifetime != 0:
				good++ // nothing to remove: what the MN asks for holds
			default:
				fail(i, uint8(proto.StatusNotHomeAgentForMN)) // draft 6.2
			}
			continue
		}
		if h == nil {
			if c.n >= c.cfg.MaxBindings {
				fail(i, uint8(proto.StatusInsufficientResources))
				continue
			}
			h = c.addHoA(key, len(bids), now)
		}
		if findBID(h.binds, b.ID) < 0 && (len(h.binds) >= c.cfg.MaxBindingsPerHoA || c.n >= c.cfg.MaxBindings) {
			fail(i, uint8(proto.StatusInsufficientResources))
			continue
		}
		c.put(h, c.newBinding(m, coa, b.ID, b.PrioStatus, life, now))
		good++
		registered++
	}
	conflict := false
	if registered > 0 {
		// Draft 6.2: a binding with BID replaces the regular binding.
		if j := findBID(h.binds, 0); j >= 0 {
			c.removeAt(h, j)
			conflict = true
		}
	}
	if h != nil {
		if good > 0 && h.lastSeq != m.Sequence {
			h.lastSeq = m.Sequence
			c.gen++
		}
		if len(h.binds) == 0 {
			c.dropIfEmpty(h)
		} else {
			c.schedule(h)
		}
	}
	if registered == 0 {
		life = 0
	}
	switch {
	case failed > 0 && good == 0 && failSt != incompliant:
		// Every sub-option failed for the same RFC 6275 reason (133 for
		// unknown BIDs, 130): that is the BU's status.
		return proto.Status(failSt), 0
	case failed > 0:
		return c.prof.StatusBulkRegFail, life
	case conflict:
		return c.prof.StatusMCoAConflict, life
	}
	return proto.StatusAccepted, life
}

// bidCoA is the care-of address of a BID sub-option (draft 6.2).
func bidCoA(in *BUInput, b *proto.BID) netip.Addr {
	if b.C {
		return b.CoA
	}
	return careOf(in)
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
