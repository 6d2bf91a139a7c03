package bcache

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

var floodAddrs = []netip.Addr{
	hoa1, hoa2, coa1, coa2, coa3,
	netip.MustParseAddr("2001:db8:bbbb::1"), // outside the home prefix
	netip.MustParseAddr("fe80::1"),
	netip.MustParseAddr("ff02::1"),
	netip.MustParseAddr("::"),
	netip.MustParseAddr("::1"),
	netip.MustParseAddr("::ffff:192.0.2.1"),
	{},
}

func randAddr(r *rand.Rand) netip.Addr { return floodAddrs[r.IntN(len(floodAddrs))] }

func randBID(r *rand.Rand) proto.BID {
	b := proto.BID{ID: uint16(r.IntN(6)), PrioStatus: uint8(r.IntN(256)), C: r.IntN(2) == 0, R: r.IntN(4) == 0}
	if b.C && r.IntN(4) != 0 {
		b.CoA = randAddr(r)
	}
	switch r.IntN(8) {
	case 0:
		b.Err = proto.ErrBIDLength
	case 1:
		b.Err = proto.ErrBIDZero
	}
	return b
}

// randomBU is any BU at all, valid or not.
func randomBU(r *rand.Rand, e *env) *BUInput {
	s := buSpec{
		src:   randAddr(r),
		hoa:   randAddr(r),
		noHAO: r.IntN(8) == 0,
		seq:   uint16(r.IntN(65536)),
		life:  uint16(r.IntN(300)),
		dereg: r.IntN(6) == 0,
		noA:   r.IntN(2) == 0,
		noH:   r.IntN(10) == 0,
	}
	if s.seq == 0 {
		s.seq = 1
	}
	if r.IntN(4) == 0 {
		s.alt = randAddr(r)
	}
	for range r.IntN(5) {
		s.bids = append(s.bids, randBID(r))
	}
	if r.IntN(10) == 0 {
		s.parseErr = &proto.BIDError{Err: proto.ErrBIDZero}
	}
	if r.IntN(30) == 0 {
		s.parseErr = proto.ErrTruncated
	}
	in := e.input(s)
	if r.IntN(30) == 0 {
		in.Msg.Type = proto.MHType(r.IntN(10))
	}
	return in
}

// invalidBU is a BU that must change nothing, of one of many kinds.
func invalidBU(r *rand.Rand, e *env) *BUInput {
	in := randomBU(r, e)
	m := in.Msg
	m.Flags |= proto.FlagH
	in.Src, in.HoA = coa1, hoa1
	switch k := r.IntN(10); k {
	case 0:
		m.Type = proto.MHType(r.IntN(10))
		if m.Type == proto.TypeBU {
			m.Type = proto.TypeBA
		}
	case 1:
		in.ParseErr = proto.ErrOptionOverrun
	case 2:
		for routable(in.Src) {
			in.Src = randAddr(r)
		}
	case 3:
		for routable(in.HoA) || !in.HoA.IsValid() {
			in.HoA = randAddr(r)
		}
	case 4:
		in.HoA = netip.MustParseAddr("2001:db8:bbbb::1")
	case 5:
		m.Flags &^= proto.FlagH
	case 6:
		// Every sub-option incompliant.
		m.Options.BIDs = m.Options.BIDs[:0]
		for range 1 + r.IntN(4) {
			b := randBID(r)
			switch r.IntN(4) {
			case 0:
				b.ID = 0
			case 1:
				b.C, b.R, b.CoA = false, true, netip.Addr{}
			case 2:
				b.C, b.CoA = true, netip.Addr{}
			case 3:
				b.C, b.R, b.CoA = true, false, netip.MustParseAddr("ff02::1")
			}
			m.Options.BIDs = append(m.Options.BIDs, b)
		}
	case 7:
		m.Lifetime = 0 // de-registration of nothing
	case 8:
		// Authentication required but wrong.
		in.HoA = hoa2
		m.Options.HasMNHAAuth = r.IntN(2) == 0
		m.Options.MNHASubtype = proto.AuthSubtypeMNHA
		m.Options.MNHASPI = 7
		m.Options.MNHAAuthData = make([]byte, 12)
		in.MH = make([]byte, 48)
		m.AuthOffset = r.IntN(60) - 5
	case 9:
		// Alternate CoA that is not routable, no BID.
		m.Options.BIDs = nil
		for routable(m.Options.AltCoA) || m.Options.AltCoA == in.HoA {
			m.Options.AltCoA = randAddr(r)
		}
		if !m.Options.AltCoA.IsValid() {
			m.Options.AltCoA = netip.MustParseAddr("fe80::2")
		}
		if m.Lifetime == 0 {
			m.Lifetime = 1
		}
	}
	return in
}

func TestFloodOfInvalidBUs(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.MNHAKeys = func(h netip.Addr) (MNHAKey, bool) { return MNHAKey{SPI: 7, Key: []byte("k")}, h == hoa2 }
	})
	r := rand.New(rand.NewPCG(1, 2))
	n := 200000
	if testing.Short() {
		n = 20000
	}
	for i := range n {
		in := invalidBU(r, e)
		res := e.c.ProcessBU(in, &e.ba)
		if len(res.Changes) != 0 || e.c.Len() != 0 {
			t.Fatalf("BU %d (%+v, msg %+v) changed the cache: %+v", i, in, in.Msg, res.Changes)
		}
		if res.Status.Accepted() && res.Dropped == NotDropped {
			t.Fatalf("BU %d (%+v, msg %+v) accepted", i, in, in.Msg)
		}
		if i%1000 == 0 {
			e.clk.Advance(time.Duration(r.IntN(5000)) * time.Millisecond)
		}
	}
	if e.c.HoAs() != 0 || e.c.Len() != 0 {
		t.Fatalf("cache not empty: %d home addresses", e.c.HoAs())
	}
	if !e.c.Next().IsZero() {
		t.Fatal("timer left behind")
	}
	t.Logf("counters: %+v", e.c.Counters())
}

// TestRandomBUs throws any BUs at the cache, mixed with time and ticks,
// and checks its invariants and that the changes it reports, applied to a
// model, always give its contents.
func TestRandomBUs(t *testing.T) {
	for _, role := range []Role{RoleHA, RoleCN} {
		t.Run(role.String(), func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Role = role; c.MaxBindingsPerHoA = 4 })
			r := rand.New(rand.NewPCG(3, uint64(role)))
			type key struct {
				hoa netip.Addr
				bid uint16
			}
			model := map[key]netip.Addr{}
			up := map[netip.Addr]bool{}
			apply := func(chs []Change) {
				for _, ch := range chs {
					k := key{ch.HoA, ch.BID}
					switch ch.Kind {
					case HoAUp:
						if up[ch.HoA] {
							t.Fatalf("HoAUp twice for %v", ch.HoA)
						}
						up[ch.HoA] = true
					case HoADown:
						if !up[ch.HoA] {
							t.Fatalf("HoADown without HoAUp for %v", ch.HoA)
						}
						delete(up, ch.HoA)
					case Added:
						if _, ok := model[k]; ok || !up[ch.HoA] {
							t.Fatalf("Added %v: exists or home address not up", k)
						}
						model[k] = ch.CoA
					case Updated:
						if _, ok := model[k]; !ok {
							t.Fatalf("Updated unknown %v", k)
						}
						model[k] = ch.CoA
					case Removed:
						if _, ok := model[k]; !ok {
							t.Fatalf("Removed unknown %v", k)
						}
						delete(model, k)
					}
				}
			}
			n := 100000
			if testing.Short() {
				n = 10000
			}
			accepted := 0
			for i := range n {
				switch r.IntN(20) {
				case 0:
					e.clk.Advance(time.Duration(r.IntN(200)) * time.Second)
				case 1:
					_, chs := e.c.Tick(e.clk.Now())
					apply(chs)
				default:
					in := randomBU(r, e)
					if r.IntN(2) == 0 {
						// Mostly well-formed, to reach deep states.
						in.Src, in.HoA, in.ParseErr = coa1, hoa1, nil
						in.Msg.Type = proto.TypeBU
						in.Msg.Sequence = uint16(i)
						if role == RoleHA {
							in.Msg.Flags |= proto.FlagH
						} else {
							in.Msg.Flags &^= proto.FlagH
						}
					}
					res := e.c.ProcessBU(in, &e.ba)
					apply(res.Changes)
					if res.Status.Accepted() && res.Dropped == NotDropped {
						accepted++
					}
				}
				if len(model) != e.c.Len() || len(up) != e.c.HoAs() {
					t.Fatalf("step %d: model has %d bindings / %d home addresses, cache %d / %d", i, len(model), len(up), e.c.Len(), e.c.HoAs())
				}
				if i%500 == 0 {
					checkInvariants(t, e.c)
					for k, coa := range model {
						b, ok := e.c.Lookup(k.hoa, k.bid)
						if !ok || b.CoA != coa {
							t.Fatalf("step %d: model %v -> %v, cache %+v %v", i, k, coa, b, ok)
						}
					}
				}
			}
			if accepted < n/20 {
				t.Fatalf("only %d BUs accepted: the generator does not reach the cache", accepted)
			}
			t.Logf("%d accepted; counters %+v", accepted, e.c.Counters())
		})
	}
}
