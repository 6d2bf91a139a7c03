package rr

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// Errors of the mobile node's side.
var (
	// ErrNotReady: the tokens a BU needs are missing or expired; call
	// Need and wait for the HoT/CoT.
	ErrNotReady = errors.New("rr: keygen tokens missing or expired")
	// ErrBAAuth: a BA from a correspondent without a valid Binding
	// Authorization Data option for the BU it answers.
	ErrBAAuth = errors.New("rr: binding acknowledgement authentication failed")
)

// Retransmission of HoTI and CoTI (RFC 6275 11.8: as for BUs,
// INITIAL_BINDACK_TIMEOUT doubling up to MAX_BINDACK_TIMEOUT).
const (
	initialInitTimeout = proto.InitialBindAckTimeoutMs * time.Millisecond
	maxInitTimeout     = proto.MaxBindAckTimeoutMs * time.Millisecond
)

// MNConfig configures an MN.
type MNConfig struct {
	// HomeAddress is the mobile node's home address (required).
	HomeAddress netip.Addr
	Clock       clock.Clock // nil: the wall clock
	Rand        io.Reader   // nil: crypto/rand
	// TokenLifetime: how long a keygen token is used after its init was
	// sent; default and maximum MAX_TOKEN_LIFETIME (210 s).
	TokenLifetime time.Duration
	// RefreshAhead: Need asks for a fresh token this long before the one
	// held expires, so that a refresh never waits for return
	// routability; default 30 s, at most half of TokenLifetime.
	RefreshAhead time.Duration
}

// test is one home or care-of test: the init in flight and the token got.
type test struct {
	// In flight.
	cookie  [CookieLen]byte
	pending bool
	sent    time.Time     // when the current init was first sent
	retry   time.Time     // when to send it again
	backoff time.Duration // next retransmission interval

	// Got.
	have  bool
	token [TokenLen]byte
	index uint16
	until time.Time // usable before this
}

func (t *test) valid(now time.Time) bool { return t.have && now.Before(t.until) }

// coaState is one care-of address's state with one correspondent.
type coaState struct {
	careof test
	// kbm is the key of the last BU built from this CoA, to check the
	// BA that answers it.
	kbm    [KbmLen]byte
	hasKbm bool
	dereg  bool // that BU de-registered: its BA's authenticator covers the home address
}

type peer struct {
	home test
	coas map[netip.Addr]*coaState
}

// MN is the mobile node's side of return routability with every
// correspondent, per care-of address (draft 3.1 and 5.2: one HoTI per
// correspondent from the home address, one CoTI per care-of address). It
// is NOT safe for concurrent use: the BUL engine's goroutine owns it.
//
// Use, for a correspondent cn and a care-of address coa:
//
//	pkts := mn.Need(cn, coa)      // HoTI/CoTI due now: send them
//	...                           // HoT/CoT arrive:
//	mn.HandleHoT(p); mn.HandleCoT(p)
//	if _, ok := mn.Ready(cn, coa); ok {
//		p, sign, _ := mn.BU(rr.BUParams{CN: cn, CoA: coa, BID: 2, ...})
//		send(p, sign)
//	}
//	mn.VerifyBA(ba)               // the BA's Binding Authorization Data
//	mn.Rejected(cn, coa, status)  // 136/137/138: tokens dropped, Need again
//	mn.Expire(now)                // drop what is over; returns when to call again
type MN struct {
	cfg  MNConfig
	clk  clock.Clock
	hoa  netip.Addr
	mac  *hmacSHA1
	peer map[netip.Addr]*peer
	out  []proto.Packet
}

// NewMN returns an MN for the home address.
func NewMN(cfg MNConfig) (*MN, error) {
	if !cfg.HomeAddress.Is6() || !cfg.HomeAddress.IsGlobalUnicast() {
		return nil, fmt.Errorf("rr: home address %v is not a global IPv6 unicast address", cfg.HomeAddress)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.TokenLifetime <= 0 || cfg.TokenLifetime > MaxTokenLifetime {
		cfg.TokenLifetime = MaxTokenLifetime
	}
	if cfg.RefreshAhead <= 0 {
		cfg.RefreshAhead = 30 * time.Second
	}
	cfg.RefreshAhead = min(cfg.RefreshAhead, cfg.TokenLifetime/2)
	return &MN{cfg: cfg, clk: cfg.Clock, hoa: cfg.HomeAddress, mac: newHMAC(), peer: map[netip.Addr]*peer{}}, nil
}

// HomeAddress returns the home address.
func (m *MN) HomeAddress() netip.Addr { return m.hoa }

func (m *MN) getPeer(cn netip.Addr) *peer {
	p := m.peer[cn]
	if p == nil {
		p = &peer{coas: map[netip.Addr]*coaState{}}
		m.peer[cn] = p
	}
	return p
}

// due reports whether t needs an init sent now: no token usable for long
// enough, and no init in flight or its retransmission time has come.
func (m *MN) due(t *test, now time.Time) bool {
	if t.have && now.Before(t.until.Add(-m.cfg.RefreshAhead)) {
		return false
	}
	return !t.pending || !now.Before(t.retry)
}

// arm prepares t's init for sending now: a new cookie for a new test, the
// same one for a retransmission (a late answer to the first still counts).
func (m *MN) arm(t *test, now time.Time) error {
	if !t.pending {
		if _, err := io.ReadFull(m.cfg.Rand, t.cookie[:]); err != nil {
			return fmt.Errorf("rr: random cookie: %w", err)
		}
		t.pending, t.sent, t.backoff = true, now, initialInitTimeout
	} else {
		t.backoff = min(2*t.backoff, maxInitTimeout)
	}
	t.retry = now.Add(t.backoff)
	return nil
}

// Need returns the HoTI and CoTI to send now for a registration of coa
// with cn: the HoTI (from the home address, to be sent through the home
// agent tunnel) when the home keygen token is missing, about to expire or
// invalidated, the CoTI (from coa, sent directly) likewise for coa's
// care-of keygen token, each again after its retransmission timeout while
// unanswered. With coa invalid or equal to the home address only the home
// test is considered (what a de-registration needs). The slice is reused
// by the next call.
func (m *MN) Need(cn, coa netip.Addr) ([]proto.Packet, error) {
	now := m.clk.Now()
	m.out = m.out[:0]
	p := m.getPeer(cn)
	if m.due(&p.home, now) {
		if err := m.arm(&p.home, now); err != nil {
			return nil, err
		}
		m.out = append(m.out, proto.Packet{Src: m.hoa, Dst: cn, MH: proto.Message{
			Type: proto.TypeHoTI, PayloadProto: proto.ProtoNone, Cookie: p.home.cookie}})
	}
	if coa.IsValid() && coa != m.hoa {
		cs := p.coas[coa]
		if cs == nil {
			cs = &coaState{}
			p.coas[coa] = cs
		}
		if m.due(&cs.careof, now) {
			if err := m.arm(&cs.careof, now); err != nil {
				return nil, err
			}
			m.out = append(m.out, proto.Packet{Src: coa, Dst: cn, MH: proto.Message{
				Type: proto.TypeCoTI, PayloadProto: proto.ProtoNone, Cookie: cs.careof.cookie}})
		}
	}
	return m.out, nil
}

// take stores the token of an answer that matches t's init in flight.
func (m *MN) take(t *test, msg *proto.Message) bool {
	if !t.pending || t.cookie != msg.Cookie {
		return false
	}
	t.pending = false
	t.have, t.token, t.index = true, msg.KeygenToken, msg.NonceIndex
	t.until = t.sent.Add(m.cfg.TokenLifetime)
	return true
}

// HandleHoT takes a Home Test: from a correspondent we sent a HoTI to, to
// the home address, with the cookie of the HoTI in flight (RFC 6275
// 11.6.2). Anything else is ignored (false).
func (m *MN) HandleHoT(p *proto.Packet) bool {
	if p.MH.Type != proto.TypeHoT || p.Dst != m.hoa || p.HomeAddress.IsValid() || p.RoutingHome.IsValid() {
		return false
	}
	pr := m.peer[p.Src]
	return pr != nil && m.take(&pr.home, &p.MH)
}

// HandleCoT takes a Care-of Test: from a correspondent, to the care-of
// address whose CoTI is in flight, with its cookie. Anything else is
// ignored (false).
func (m *MN) HandleCoT(p *proto.Packet) bool {
	if p.MH.Type != proto.TypeCoT || p.HomeAddress.IsValid() || p.RoutingHome.IsValid() {
		return false
	}
	pr := m.peer[p.Src]
	if pr == nil {
		return false
	}
	cs := pr.coas[p.Dst]
	return cs != nil && m.take(&cs.careof, &p.MH)
}

// Keys are what a BU to a correspondent needs from return routability.
type Keys struct {
	Kbm              [KbmLen]byte
	HomeNonceIndex   uint16
	CareofNonceIndex uint16
}

// Ready returns the keys of a registration of coa with cn when both
// tokens are held and valid.
func (m *MN) Ready(cn, coa netip.Addr) (Keys, bool) {
	now := m.clk.Now()
	p := m.peer[cn]
	if p == nil || !p.home.valid(now) {
		return Keys{}, false
	}
	cs := p.coas[coa]
	if cs == nil || !cs.careof.valid(now) {
		return Keys{}, false
	}
	k := Keys{HomeNonceIndex: p.home.index, CareofNonceIndex: cs.careof.index}
	m.mac.kbm(&p.home.token, &cs.careof.token, &k.Kbm)
	return k, true
}

// ReadyDereg returns the keys of a de-registration with cn (lifetime 0,
// or care-of address = home address): Kbm from the home keygen token
// alone (RFC 6275 5.2.5). The care-of nonce index is coa's when a valid
// one is held (the correspondent does not look at it), else 0.
func (m *MN) ReadyDereg(cn, coa netip.Addr) (Keys, bool) {
	now := m.clk.Now()
	p := m.peer[cn]
	if p == nil || !p.home.valid(now) {
		return Keys{}, false
	}
	k := Keys{HomeNonceIndex: p.home.index}
	if cs := p.coas[coa]; cs != nil && cs.careof.valid(now) {
		k.CareofNonceIndex = cs.careof.index
	}
	m.mac.kbm(&p.home.token, nil, &k.Kbm)
	return k, true
}

// BUParams describe one Binding Update to a correspondent.
type BUParams struct {
	CN  netip.Addr
	CoA netip.Addr // the source; the home address for a BU from home
	// BID is the binding's BID; 0 sends an RFC 6275 BU without BID
	// sub-option (the fallback for a correspondent that does not know
	// MCoA).
	BID      uint16
	Priority uint8
	Sequence uint16
	// Lifetime asked for; 0 de-registers. Capped at
	// MAX_RR_BINDING_LIFETIME (420 s); rounded down to units of 4 s, at
	// least one unit.
	Lifetime time.Duration
}

// BU builds a Binding Update to a correspondent (draft 5.2, RFC 6275
// 11.7.2): from the care-of address with the Home Address option, the A
// flag (draft 5.2: always) and no H flag, the BID sub-option without
// flags, the Nonce Indices option and the Binding Authorization Data
// option, signed with Kbm over the whole MH (BID sub-option included) by
// the returned proto.BADSigner: pass both to proto.AppendPacket or the
// transport's Send. A de-registration (lifetime 0, or CoA = home address)
// uses the home keygen token alone. ErrNotReady when the tokens are not
// there.
func (m *MN) BU(b BUParams) (proto.Packet, proto.Signer, error) {
	if !b.CoA.IsValid() {
		b.CoA = m.hoa
	}
	dereg := b.Lifetime <= 0 || b.CoA == m.hoa
	var k Keys
	var ok bool
	if dereg {
		k, ok = m.ReadyDereg(b.CN, b.CoA)
	} else {
		k, ok = m.Ready(b.CN, b.CoA)
	}
	if !ok {
		return proto.Packet{}, nil, ErrNotReady
	}
	var units uint16
	if b.Lifetime > 0 {
		units = uint16(max(min(b.Lifetime, MaxRRBindingLifetime)/(proto.LifetimeUnitSeconds*time.Second), 1))
	}
	p := proto.Packet{Src: b.CoA, Dst: b.CN, MH: proto.Message{
		Type: proto.TypeBU, PayloadProto: proto.ProtoNone,
		Sequence: b.Sequence, Flags: proto.FlagA, Lifetime: units,
	}}
	if b.CoA != m.hoa {
		p.HomeAddress = m.hoa
	}
	o := &p.MH.Options
	o.HasNonceIndices, o.HomeNonceIndex, o.CareofNonce = true, k.HomeNonceIndex, k.CareofNonceIndex
	if b.BID != 0 {
		o.BIDs = []proto.BID{{ID: b.BID, PrioStatus: b.Priority}}
	}
	o.HasAuthData = true
	if pr := m.peer[b.CN]; pr != nil {
		cs := pr.coas[b.CoA]
		if cs == nil {
			cs = &coaState{}
			pr.coas[b.CoA] = cs
		}
		cs.kbm, cs.hasKbm, cs.dereg = k.Kbm, true, dereg
	}
	kbm := k.Kbm
	// RFC 6275 5.2.6: a de-registration's authenticator covers the home
	// address, whatever care-of address it is sent from.
	auth := b.CoA
	if dereg {
		auth = m.hoa
	}
	return p, proto.BADSigner{Kbm: kbm[:], CoA: auth, Correspondent: b.CN}, nil
}

// VerifyBA checks a Binding Acknowledgement from a correspondent (RFC 6275
// 11.7.3): it answers a BU built by BU for its destination (the care-of
// address), and carries a Binding Authorization Data option valid with
// that BU's Kbm, except with status 136, 137 or 138, which carry none.
// p.MHBytes must be the MH as received.
func (m *MN) VerifyBA(p *proto.Packet) error {
	if p.MH.Type != proto.TypeBA {
		return fmt.Errorf("%w: not a BA", ErrBAAuth)
	}
	pr := m.peer[p.Src]
	if pr == nil {
		return fmt.Errorf("%w: no return routability with %v", ErrBAAuth, p.Src)
	}
	cs := pr.coas[p.Dst]
	if cs == nil || !cs.hasKbm {
		return fmt.Errorf("%w: no BU sent from %v", ErrBAAuth, p.Dst)
	}
	if !NeedsAuthData(p.MH.Status) {
		return nil
	}
	auth := p.Dst
	if cs.dereg {
		auth = m.hoa
	}
	if !p.MH.Options.HasAuthData || !m.mac.verifyBAD(&cs.kbm, auth, p.Src, p.MHBytes, p.MH.AuthOffset) {
		return fmt.Errorf("%w: wrong or missing authenticator", ErrBAAuth)
	}
	return nil
}

// Rejected takes a BA status from cn for a BU sent from coa: 136 drops the
// home keygen token, 137 coa's care-of keygen token, 138 both (RFC 6275
// 11.7.3: return routability again), so that the next Need asks anew. It
// reports whether it dropped anything.
func (m *MN) Rejected(cn, coa netip.Addr, st proto.Status) bool {
	p := m.peer[cn]
	if p == nil {
		return false
	}
	home := st == proto.StatusExpiredHomeNonce || st == proto.StatusExpiredNonces
	careof := st == proto.StatusExpiredCareofNonce || st == proto.StatusExpiredNonces
	if home {
		p.home.have = false
	}
	if cs := p.coas[coa]; careof && cs != nil {
		cs.careof.have = false
	}
	return home || careof
}

// Forget drops the state of coa with cn (the care-of address is gone).
func (m *MN) Forget(cn, coa netip.Addr) {
	if p := m.peer[cn]; p != nil {
		delete(p.coas, coa)
	}
}

// ForgetCN drops everything about cn (route optimisation with it ends).
func (m *MN) ForgetCN(cn netip.Addr) { delete(m.peer, cn) }

// Expire drops the tokens whose lifetime is over at now and returns when
// something is next due: a retransmission of an init in flight or a token
// reaching its refresh time or expiry (the zero time when nothing is).
// A caller that runs on timers calls Need for its wanted registrations
// when that time comes.
func (m *MN) Expire(now time.Time) time.Time {
	var next time.Time
	upd := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	visit := func(t *test) {
		if t.have && !now.Before(t.until) {
			t.have = false
		}
		// An init unanswered for a whole token lifetime is given up; the
		// next Need starts afresh.
		if t.pending && !now.Before(t.sent.Add(m.cfg.TokenLifetime)) {
			t.pending = false
		}
		if t.pending {
			upd(t.retry)
		}
		if t.have {
			if r := t.until.Add(-m.cfg.RefreshAhead); now.Before(r) {
				upd(r)
			} else {
				upd(t.until)
			}
		}
	}
	for _, p := range m.peer {
		visit(&p.home)
		for _, cs := range p.coas {
			visit(&cs.careof)
		}
	}
	return next
}

// TokenState describes one test for status displays.
type TokenState struct {
	CN, Addr  netip.Addr // Addr: the home address or a care-of address
	Home      bool
	Valid     bool
	Pending   bool
	NonceIdx  uint16
	ExpiresIn time.Duration
}

// States returns a snapshot of every test (unordered).
func (m *MN) States() []TokenState {
	now := m.clk.Now()
	var out []TokenState
	add := func(cn, a netip.Addr, home bool, t *test) {
		s := TokenState{CN: cn, Addr: a, Home: home, Valid: t.valid(now), Pending: t.pending, NonceIdx: t.index}
		if s.Valid {
			s.ExpiresIn = t.until.Sub(now)
		}
		out = append(out, s)
	}
	for cn, p := range m.peer {
		add(cn, m.hoa, true, &p.home)
		for a, cs := range p.coas {
			add(cn, a, false, &cs.careof)
		}
	}
	return out
}
