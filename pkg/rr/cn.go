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

// Protocol constants (RFC 6275 12).
const (
	MaxTokenLifetime     = proto.MaxTokenLifetimeSec * time.Second
	MaxNonceLifetime     = proto.MaxNonceLifetimeSec * time.Second
	MaxRRBindingLifetime = proto.MaxRRBindingLifetimeSec * time.Second
)

// Defaults of CNConfig.
const (
	// DefaultNonceInterval is how long one nonce is handed out before the
	// next is made: RFC 6275 5.2.7's suggestion, MAX_NONCE_LIFETIME minus
	// MAX_TOKEN_LIFETIME, so that every token stays usable for at least
	// MAX_TOKEN_LIFETIME.
	DefaultNonceInterval = MaxNonceLifetime - MaxTokenLifetime
	// DefaultKeyLifetime is how long one Kcn is used for new nonces.
	DefaultKeyLifetime = time.Hour
)

// nonceSlots is the size of the nonce ring; a power of two larger than the
// number of nonces alive at once (NonceLifetime/NonceInterval + 1).
const nonceSlots = 16

// Errors of CN.VerifyBU: the Binding Update must be silently discarded
// (RFC 6275 9.5.1). They are sentinels, so that rejecting costs nothing.
var (
	ErrHomeRegistration = errors.New("rr: home registration (H flag): no return routability")
	ErrNoNonceIndices   = errors.New("rr: binding update without Nonce Indices option")
	ErrNoAuthData       = errors.New("rr: binding update without Binding Authorization Data as its last option")
	ErrAuthenticator    = errors.New("rr: wrong Binding Authorization Data authenticator")
	ErrNotBU            = errors.New("rr: not a binding update")
	// ErrInit: a HoTI or CoTI that cannot be answered (a Home Address
	// option or type 2 routing header on it, or a source that is not a
	// global unicast address; RFC 6275 9.4.1, 9.4.2).
	ErrInit = errors.New("rr: test init not answerable")
)

// CNConfig configures a CN. Zero fields take defaults.
type CNConfig struct {
	Clock clock.Clock // nil: the wall clock
	Rand  io.Reader   // nil: crypto/rand
	// NonceInterval: a new nonce when the current one is this old;
	// default 30 s. At least NonceLifetime/15.
	NonceInterval time.Duration
	// NonceLifetime: how long after it was made a nonce is recognised in a
	// Binding Update; default and maximum MAX_NONCE_LIFETIME (240 s).
	NonceLifetime time.Duration
	// KeyLifetime: a new Kcn for nonces made after this; default 1 h.
	// The previous Kcn stays with the nonces made with it.
	KeyLifetime time.Duration
}

type kcnKey struct {
	k    [KcnLen]byte
	mac  keyState
	made time.Time
}

type nonceEntry struct {
	nonce [NonceLen]byte
	index uint16
	used  bool
	made  time.Time
	kcn   *kcnKey // the key tokens of this nonce are made with
}

// CN is the correspondent node's side of return routability (RFC 6275
// 5.2, 9.4, 9.5.1): it keeps Kcn and the nonces, answers HoTI and CoTI, and
// checks the authorization of Binding Updates. It is NOT safe for
// concurrent use: one goroutine owns it (the one that owns the binding
// cache).
type CN struct {
	cfg CNConfig
	clk clock.Clock

	kcn     *kcnKey
	nonces  [nonceSlots]nonceEntry
	cur     uint16 // index of the newest nonce
	started bool

	mac    *hmacSHA1
	ht, ct [TokenLen]byte
	kbm    [KbmLen]byte
	signer baSigner
}

// NewCN returns a CN with a fresh Kcn.
func NewCN(cfg CNConfig) (*CN, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.NonceLifetime <= 0 || cfg.NonceLifetime > MaxNonceLifetime {
		cfg.NonceLifetime = MaxNonceLifetime
	}
	if cfg.NonceInterval <= 0 {
		cfg.NonceInterval = DefaultNonceInterval
	}
	// Every nonce alive must have its own slot in the ring.
	cfg.NonceInterval = max(cfg.NonceInterval, cfg.NonceLifetime/(nonceSlots-1))
	if cfg.KeyLifetime <= 0 {
		cfg.KeyLifetime = DefaultKeyLifetime
	}
	c := &CN{cfg: cfg, clk: cfg.Clock, mac: newHMAC()}
	c.signer.mac = c.mac
	if err := c.rotate(c.clk.Now()); err != nil {
		return nil, err
	}
	// A random first index, so that indices from before a restart are
	// unlikely to name a nonce of this run.
	var b [2]byte
	if _, err := io.ReadFull(cfg.Rand, b[:]); err != nil {
		return nil, fmt.Errorf("rr: random nonce index: %w", err)
	}
	c.cur = uint16(b[0])<<8 | uint16(b[1])
	return c, nil
}

func (c *CN) rotate(now time.Time) error {
	k := &kcnKey{made: now}
	if _, err := io.ReadFull(c.cfg.Rand, k.k[:]); err != nil {
		return fmt.Errorf("rr: random Kcn: %w", err)
	}
	var err error
	if k.mac, err = c.mac.saveKey(k.k[:]); err != nil {
		return fmt.Errorf("rr: Kcn: %w", err)
	}
	c.kcn = k
	return nil
}

// current returns the nonce to hand out now, making a new one when the
// current one is NonceInterval old (RFC 6275 5.2.7: nonces are made at
// regular intervals, and on demand here, so an idle node makes none).
func (c *CN) current(now time.Time) (*nonceEntry, error) {
	e := &c.nonces[c.cur%nonceSlots]
	if c.started && e.used && e.index == c.cur && now.Sub(e.made) < c.cfg.NonceInterval && !now.Before(e.made) {
		return e, nil
	}
	if now.Sub(c.kcn.made) >= c.cfg.KeyLifetime || now.Before(c.kcn.made) {
		// The old key stays referenced by the nonces made with it.
		if err := c.rotate(now); err != nil {
			return nil, err
		}
	}
	idx := c.cur
	if c.started {
		idx++
	}
	n := nonceEntry{index: idx, used: true, made: now, kcn: c.kcn}
	if _, err := io.ReadFull(c.cfg.Rand, n.nonce[:]); err != nil {
		return nil, fmt.Errorf("rr: random nonce: %w", err)
	}
	c.cur, c.started = idx, true
	e = &c.nonces[idx%nonceSlots]
	*e = n
	return e, nil
}

// lookup returns the nonce with index idx if it is still recognised.
func (c *CN) lookup(idx uint16, now time.Time) *nonceEntry {
	e := &c.nonces[idx%nonceSlots]
	if !e.used || e.index != idx || now.Before(e.made) || now.Sub(e.made) >= c.cfg.NonceLifetime {
		return nil
	}
	return e
}

// NonceValid reports whether a Binding Update naming nonce index idx
// would find it (for tests and metrics).
func (c *CN) NonceValid(idx uint16) bool { return c.lookup(idx, c.clk.Now()) != nil }

// initOK: RFC 6275 9.4.1 and 9.4.2: a HoTI or CoTI carries neither a Home
// Address option nor a type 2 routing header, and its source (the home
// or care-of address) must be one we can answer.
func initOK(p *proto.Packet) bool {
	return !p.HomeAddress.IsValid() && !p.RoutingHome.IsValid() &&
		p.Src.Is6() && !p.Src.Is4In6() && p.Src.IsGlobalUnicast() && p.Dst.Is6()
}

// Answer fills out with the HoT for a HoTI or the CoT for a CoTI (RFC
// 6275 9.4.3, 9.4.4): from the address the init was sent to, to its
// source, with its cookie, the current nonce index and the keygen token
// of the source address. out's slices are reused. It does not allocate
// (except when a new Kcn is made).
func (c *CN) Answer(in *proto.Packet, out *proto.Packet) error {
	var typ proto.MHType
	careof := false
	switch in.MH.Type {
	case proto.TypeHoTI:
		typ = proto.TypeHoT
	case proto.TypeCoTI:
		typ, careof = proto.TypeCoT, true
	default:
		return ErrInit
	}
	if !initOK(in) {
		return ErrInit
	}
	e, err := c.current(c.clk.Now())
	if err != nil {
		return err
	}
	out.Src, out.Dst, out.HopLimit = in.Dst, in.Src, 0
	out.HomeAddress, out.RoutingHome, out.MHBytes = netip.Addr{}, netip.Addr{}, nil
	out.MH.Reset()
	out.MH.Type = typ
	out.MH.PayloadProto = proto.ProtoNone
	out.MH.Cookie = in.MH.Cookie
	out.MH.NonceIndex = e.index
	out.MH.KeygenToken = c.mac.token(&e.kcn.mac, in.Src, &e.nonce, careof)
	return nil
}

// BUAddrs are the addresses a correspondent's Binding Update is checked
// with (RFC 6275 9.5.1, 5.2.6).
type BUAddrs struct {
	HoA    netip.Addr // the Home Address option's, or the source
	CareOf netip.Addr // the Alternate Care-of Address option's, or the source
	CN     netip.Addr // the destination: the correspondent's address
	// Dereg: lifetime 0 or care-of address = home address; Kbm is made of
	// the home keygen token alone.
	Dereg bool
	// Auth is the address the authenticators of the BU and of its BA
	// cover (RFC 6275 5.2.6: "the home address of the mobile node if this
	// option is used in de-registration"): HoA for a de-registration,
	// else CareOf.
	Auth netip.Addr
}

// Addrs returns the addresses of a received BU.
func Addrs(p *proto.Packet) BUAddrs {
	a := BUAddrs{HoA: p.HomeAddress, CareOf: p.Src, CN: p.Dst}
	if !a.HoA.IsValid() {
		a.HoA = p.Src
	}
	if alt := p.MH.Options.AltCoA; alt.IsValid() {
		a.CareOf = alt
	}
	a.Dereg = p.MH.Lifetime == 0 || a.CareOf == a.HoA
	a.Auth = a.CareOf
	if a.Dereg {
		a.Auth = a.HoA
	}
	return a
}

// VerifyBU checks the return routability authorization of a received
// Binding Update without the H flag (RFC 6275 9.5.1): p is parsed
// (proto.ParsePacket) and p.MHBytes is the Mobility Header as received.
//
//   - an error (one of the sentinels above): silently discard the BU;
//   - status 136, 137 or 138: the home nonce index, the care-of nonce
//     index or both are no longer recognised: answer with that status
//     (and without Binding Authorization Data) and change nothing;
//   - status 0: authorised. Kbm stays available for the BA (BASigner)
//     until the next VerifyBU.
//
// The care-of nonce index is not looked at for a de-registration, whose
// Kbm is SHA1(home keygen token). The authenticator covers the whole MH,
// BID sub-options included. It does not allocate.
func (c *CN) VerifyBU(p *proto.Packet) (proto.Status, error) {
	m := &p.MH
	if m.Type != proto.TypeBU {
		return 0, ErrNotBU
	}
	if m.Flags&proto.FlagH != 0 {
		return 0, ErrHomeRegistration
	}
	o := &m.Options
	if !o.HasNonceIndices {
		return 0, ErrNoNonceIndices
	}
	if !o.HasAuthData || !badLayout(p.MHBytes, m.AuthOffset) {
		return 0, ErrNoAuthData
	}
	a := Addrs(p)
	now := c.clk.Now()
	he := c.lookup(o.HomeNonceIndex, now)
	var ce *nonceEntry
	if !a.Dereg {
		ce = c.lookup(o.CareofNonce, now)
	}
	switch {
	case he == nil && ce == nil && !a.Dereg:
		return proto.StatusExpiredNonces, nil
	case he == nil:
		return proto.StatusExpiredHomeNonce, nil
	case ce == nil && !a.Dereg:
		return proto.StatusExpiredCareofNonce, nil
	}
	c.ht = c.mac.token(&he.kcn.mac, a.HoA, &he.nonce, false)
	if a.Dereg {
		c.mac.kbm(&c.ht, nil, &c.kbm)
	} else {
		c.ct = c.mac.token(&ce.kcn.mac, a.CareOf, &ce.nonce, true)
		c.mac.kbm(&c.ht, &c.ct, &c.kbm)
	}
	if !c.mac.verifyBAD(&c.kbm, a.Auth, a.CN, p.MHBytes, m.AuthOffset) {
		c.kbm = [KbmLen]byte{}
		return 0, ErrAuthenticator
	}
	return proto.StatusAccepted, nil
}

// NeedsAuthData reports whether the BA answering a correspondent BU with
// status st carries a Binding Authorization Data option: always, except
// for 136, 137 and 138, where Kbm could not be made (RFC 6275 9.5.4).
func NeedsAuthData(st proto.Status) bool {
	return st < proto.StatusExpiredHomeNonce || st > proto.StatusExpiredNonces
}

// BASigner returns the Signer of the BA that answers the BU VerifyBU last
// authorised (RFC 6275 5.2.6: First(96, HMAC_SHA1(Kbm, care-of address |
// correspondent | BA))), where coa is the address the BU's authenticator
// covered (BUAddrs.Auth: its care-of address, or the home address for a
// de-registration) and cn the correspondent's address. The BA must have
// Options.HasAuthData set. The Signer is valid until the next VerifyBU or
// BASigner; it does not allocate.
func (c *CN) BASigner(coa, cn netip.Addr) proto.Signer {
	c.signer.kbm, c.signer.coa, c.signer.cn = c.kbm, coa, cn
	return &c.signer
}

type baSigner struct {
	mac     *hmacSHA1
	kbm     [KbmLen]byte
	coa, cn netip.Addr
}

var errSignLayout = fmt.Errorf("rr: no Binding Authorization Data authenticator at that offset: %w", proto.ErrInvalid)

func (s *baSigner) Sign(mh []byte, authOff int) error {
	if authOff-2 < 6 || authOff+proto.AuthenticatorLen > len(mh) ||
		proto.OptionType(mh[authOff-2]) != proto.OptAuthData || mh[authOff-1] != proto.AuthenticatorLen {
		return errSignLayout
	}
	copy(mh[authOff:], s.mac.authenticator(&s.kbm, s.coa, s.cn, mh, authOff))
	return nil
}
