package iface

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
)

func marshalRA(t testing.TB, ra *ndp.RouterAdvertisement) []byte {
	t.Helper()
	b, err := ndp.MarshalMessage(ra)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRA(t *testing.T) {
	ra := &ndp.RouterAdvertisement{
		CurrentHopLimit:     64,
		MobileIPv6HomeAgent: true,
		RouterLifetime:      30 * time.Minute,
		Options: []ndp.Option{
			&ndp.PrefixInformation{PrefixLength: 64, OnLink: true, AutonomousAddressConfiguration: true,
				ValidLifetime: time.Hour, PreferredLifetime: time.Minute, Prefix: netip.MustParseAddr("2001:db8:1::")},
			&ndp.MTU{MTU: 1400},
			&ndp.PrefixInformation{PrefixLength: 64, OnLink: true,
				ValidLifetime: ndp.Infinity, PreferredLifetime: ndp.Infinity, Prefix: netip.MustParseAddr("2001:db8:aaaa::")},
		},
	}
	b := marshalRA(t, ra)
	info, err := parseRA(b, netip.MustParseAddr("fe80::1%eth0"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Router != ll1 || info.Lifetime != 30*time.Minute || !info.HomeAgent || len(info.Prefixes) != 2 {
		t.Fatalf("parsed %+v", info)
	}
	if info.Prefixes[0].Prefix != foreign1 || info.Prefixes[0].Valid != time.Hour || info.Prefixes[0].RouterAddr.IsValid() {
		t.Errorf("prefix 0 %+v", info.Prefixes[0])
	}
	if info.Prefixes[1].Prefix != homePfx || info.Prefixes[1].Valid < infinite {
		t.Errorf("prefix 1 %+v", info.Prefixes[1])
	}

	// Router Address flag (RFC 6275 7.2): the second prefix option carries
	// the home agent's full address.
	off := 16 + 32 + 8 // header, first prefix, MTU
	if b[off] != 3 {
		t.Fatalf("option at %d is %d", off, b[off])
	}
	b[off+3] |= 0x20
	copy(b[off+16:off+32], haAddr.AsSlice())
	info, err = parseRA(b, ll1)
	if err != nil {
		t.Fatal(err)
	}
	if info.Prefixes[1].RouterAddr != haAddr || info.Prefixes[1].Prefix != homePfx || info.Prefixes[0].RouterAddr.IsValid() {
		t.Errorf("router address: %+v", info.Prefixes)
	}
	s := newRAState(&Config{HomeAgent: haAddr})
	if !s.update(3, info, t0) || !s.view(3, t0).home {
		t.Error("the home agent's RA does not mark the home link")
	}

	if _, err := parseRA(b[:20], ll1); err == nil {
		t.Error("truncated RA parsed")
	}
	ns, _ := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: ll2})
	if _, err := parseRA(ns, ll1); !errors.Is(err, errNotRA) {
		t.Errorf("neighbor solicitation: %v", err)
	}
}

func FuzzParseRA(f *testing.F) {
	f.Add(marshalRA(f, &ndp.RouterAdvertisement{RouterLifetime: time.Minute, Options: []ndp.Option{
		&ndp.PrefixInformation{PrefixLength: 64, ValidLifetime: time.Hour, Prefix: netip.MustParseAddr("2001:db8:1::")},
	}}))
	f.Add([]byte{134, 0, 0, 0, 64, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 200, 0xe0})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parseRA(b, ll1)
		if err != nil {
			return
		}
		s := newRAState(&Config{HomePrefix: homePfx, HomeAgent: haAddr})
		s.update(1, info, t0)
		s.prune(t0.Add(time.Hour))
		for _, p := range info.Prefixes {
			if p.Prefix.IsValid() && p.Prefix != p.Prefix.Masked() {
				t.Fatalf("unmasked prefix %v", p.Prefix)
			}
		}
	})
}
