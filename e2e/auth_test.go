package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/bul"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// strangerCoA is the address of ar1's access link: a care-of address of
// the stranger's own, on a link the mobile node also uses.
var strangerCoA = netip.MustParseAddr("2001:db8:1::1")

// TestStrangerRefused: with the three bindings registered (the lab runs
// authenticated, with a key made for this run), a stranger in ar1 sends
// Binding Updates for the home address with a care-of address of his own,
// unsigned and signed with a wrong key, plain and with the BID of eth0.
// The home agent discards them (RFC 4285: no answer), counts them in
// mcoa_ha_bu_refused_total, and its cache and the MN's bindings stay as
// they were. A BU for a served home address that has no key is answered
// 129 (administratively prohibited), and nothing is cached for it.
func TestStrangerRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, opts{})
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })
	e.waitFor("three bindings registered on the MN", registerTimeout, func() error { return e.registered(ifaces...) })
	if s := e.status(e.ha); s.Auth != "required" {
		t.Fatalf("the lab's home agent: auth %q, want required", s.Auth)
	}
	if out := string(e.mcoactl(e.ha, "status")); !containsLine(out, "authentication:", "required") {
		t.Errorf("mcoactl status against mcoa-ha:\n%s", out)
	}
	mark := e.ha.BUMark()
	before := e.mustCache()
	seqs := map[string]uint32{}
	for _, b := range before {
		seqs[b.CoA.String()] = uint32(b.Sequence)
	}

	var conn *mhsock.Conn
	if err := e.inNode(lab.AR1, func() (err error) {
		// His address is on the access link, the way out is the uplink:
		// routing picks the interface.
		conn, err = mhsock.Listen(&mhsock.Config{NFTable: "mcoa_e2e_stranger", NoPin: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	wrong, err := bul.NewMNHAAuth(lab.MNHASPI, []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if key, err := e.lab.MNHAKey(); err != nil || len(key) != 32 || string(key) == "0123456789abcdef0123456789abcdef" {
		t.Fatalf("the lab's key %x, %v", key, err)
	}
	// Well ahead of the MN's sequence numbers, so that only the
	// authentication can refuse them.
	seq := uint16(e.mustCache()[0].Sequence + 1000)
	send := func(hoa netip.Addr, signed bool, bids []proto.BID) {
		t.Helper()
		seq++
		p := &proto.Packet{Src: strangerCoA, Dst: lab.HAAddr, HomeAddress: hoa}
		p.MH.Type = proto.TypeBU
		p.MH.PayloadProto = proto.ProtoNone
		p.MH.Sequence = seq
		p.MH.Flags = proto.FlagA | proto.FlagH
		p.MH.Lifetime = 100
		p.MH.Options.BIDs = bids
		var sign proto.Signer
		if signed {
			wrong.AddOption(&p.MH)
			sign = wrong.Signer(p)
		}
		if err := conn.Send(p, sign); err != nil {
			t.Fatalf("send BU: %v", err)
		}
	}
	refused := func(reason string) float64 {
		return e.metrics(e.ha)[fmt.Sprintf(`mcoa_ha_bu_refused_total{reason=%q}`, reason)]
	}

	eth0 := []proto.BID{{ID: e.bids["eth0"], PrioStatus: 200, C: true, CoA: strangerCoA}}
	send(lab.HoA, false, nil)
	send(lab.HoA, false, eth0)
	e.waitFor("two unsigned BUs refused", 10*time.Second, func() error {
		if n := refused("unauthenticated"); n != 2 {
			return fmt.Errorf("refused{unauthenticated} = %v", n)
		}
		return nil
	})
	send(lab.HoA, true, nil)
	send(lab.HoA, true, eth0)
	e.waitFor("two BUs with a wrong key refused", 10*time.Second, func() error {
		if n := refused("bad_auth"); n != 2 {
			return fmt.Errorf("refused{bad_auth} = %v", n)
		}
		return nil
	})

	// A served home address without a key: told 129. Whatever the
	// stranger received before that is an answer to the four above.
	other := netip.MustParseAddr("2001:db8:aaaa::200")
	send(other, false, nil)
	var r mhsock.Received
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	for {
		if err := conn.Recv(ctx, &r); err != nil {
			t.Fatalf("no answer to a BU for a home address without a key: %v", err)
		}
		p := &r.Packet
		if p.MH.Type != proto.TypeBA {
			continue
		}
		if p.RoutingHome != other || p.MH.Sequence != seq {
			t.Fatalf("the stranger got a BA about %v (sequence %d, status %d): the refused BUs were answered", p.RoutingHome, p.MH.Sequence, p.MH.Status)
		}
		if p.MH.Status != proto.StatusAdminProhibited || p.MH.Options.HasMNHAAuth {
			t.Fatalf("BA status %d (MN-HA option %v), want 129 unsigned", p.MH.Status, p.MH.Options.HasMNHAAuth)
		}
		break
	}
	if n := refused("no_key"); n != 1 {
		t.Errorf("refused{no_key} = %v, want 1", n)
	}

	// Nothing changed: the HA's cache holds the MN's three bindings with
	// their sequence numbers (nothing for the other address), and the MN
	// still has them registered.
	after := e.mustCache()
	if err := e.checkEntries(after, ifaces...); err != nil {
		t.Errorf("HA cache after the stranger: %v\n%s", err, fmtCache(after))
	}
	for _, c := range after {
		if c.CoA == strangerCoA || c.HoA == other {
			t.Errorf("the stranger's binding is cached: %+v", c)
		}
		if s, ok := seqs[c.CoA.String()]; !ok || uint32(c.Sequence)-s > 1 {
			// A refresh by the MN itself may have come in between.
			t.Errorf("cache entry %+v, sequence before %d", c, s)
		}
	}
	if err := e.registered(ifaces...); err != nil {
		t.Errorf("MN bindings after the stranger: %v", err)
	}
	// Reported as refused, from the stranger's address.
	bus := e.ha.BUsSince(mark)
	if !slices.ContainsFunc(bus, func(bu control.BU) bool { return bu.Src == strangerCoA && bu.Refused != "" }) {
		t.Errorf("no refused BU from %s among mcoa-ha's events: %+v", strangerCoA, bus)
	}
}

// containsLine reports whether out has a line starting with key whose
// value starts with want.
func containsLine(out, key, want string) bool {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key); ok && strings.HasPrefix(strings.TrimSpace(v), want) {
			return true
		}
	}
	return false
}
