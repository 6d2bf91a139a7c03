package bcache

import (
	"net/netip"
	"testing"

	"github.com/mcoad/mcoad/pkg/proto"
)

// TestRequireAuth: with RequireAuth a home address without a key is
// refused with 129 (unsigned, nothing cached), a keyed one's unsigned or
// wrongly signed BUs are discarded, and each refusal is counted by reason.
func TestRequireAuth(t *testing.T) {
	sa := MNHAKey{SPI: 0x1234, Key: []byte("0123456789abcdef")}
	wrong := MNHAKey{SPI: 0x1234, Key: []byte("fedcba9876543210")}
	otherSPI := MNHAKey{SPI: 0x9999, Key: sa.Key}
	keys := func(h netip.Addr) (MNHAKey, bool) { return sa, h == hoa1 }
	e := newEnv(t, func(c *Config) { c.MNHAKeys = keys; c.RequireAuth = true })

	// A home address without a key, with and without an MN-HA option, and
	// without the H flag (not a home registration at all).
	for i, s := range []buSpec{
		{hoa: hoa2, bids: []proto.BID{bid(1, 0)}},
		{hoa: hoa2, mnha: &wrong},
		{hoa: hoa2, noH: true},
	} {
		r := e.bu(s)
		if !r.Send || r.Status != proto.StatusAdminProhibited || r.Refused != RefusedNoKey || r.Signer != nil ||
			e.ba.Options.HasMNHAAuth || len(r.Changes) != 0 {
			t.Fatalf("BU %d for a home address without key: %+v", i, r)
		}
	}
	if n := e.c.Len(); n != 0 {
		t.Fatalf("%d bindings after refusals", n)
	}

	e.mustAccept(buSpec{mnha: &sa, bids: []proto.BID{bid(1, 0)}})
	for _, tc := range []struct {
		name string
		s    buSpec
		want Refusal
	}{
		{"unsigned", buSpec{src: coa3, bids: []proto.BID{bid(1, 0)}}, RefusedUnauthenticated},
		{"wrong key", buSpec{src: coa3, mnha: &wrong, bids: []proto.BID{bid(1, 0)}}, RefusedBadAuth},
		{"other SPI", buSpec{src: coa3, mnha: &otherSPI, bids: []proto.BID{bid(1, 0)}}, RefusedBadAuth},
	} {
		r := e.bu(tc.s)
		if r.Send || r.Dropped != DropAuth || r.Refused != tc.want || len(r.Changes) != 0 {
			t.Fatalf("%s: %+v, want a silent drop refused %v", tc.name, r, tc.want)
		}
	}
	if b, ok := e.c.Lookup(hoa1, 1); !ok || b.CoA != coa1 {
		t.Fatalf("binding changed: %+v", b)
	}
	c := e.c.Counters()
	want := map[string]uint64{"no_key": 3, "unauthenticated": 1, "bad_auth": 2}
	if len(c.Refused) != len(want) {
		t.Fatalf("refused %v, want %v", c.Refused, want)
	}
	for k, n := range want {
		if c.Refused[k] != n {
			t.Errorf("refused[%s] = %d, want %d", k, c.Refused[k], n)
		}
	}
	if c.Rejected[proto.StatusAdminProhibited] != 3 || c.Dropped["auth"] != 3 {
		t.Errorf("rejected %v dropped %v", c.Rejected, c.Dropped)
	}
}

// Without RequireAuth a home address without a key registers
// unauthenticated (allow_unauthenticated), and a correspondent never
// requires the MN-HA option.
func TestRequireAuthOff(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.bu(buSpec{hoa: hoa2}); r.Status != st0 || r.Refused != NotRefused {
		t.Fatalf("result %+v", r)
	}
	cfg := Config{Role: RoleCN, RequireAuth: true}.withDefaults()
	if cfg.RequireAuth {
		t.Error("a correspondent's cache requires MN-HA authentication")
	}
}
