package bul

import (
	"testing"

	"github.com/mcoad/mcoad/pkg/proto"
)

// wireTransport encodes every packet with the real codec, as mhsock does.
type wireTransport struct{ pkts [][]byte }

func (w *wireTransport) Send(p *proto.Packet, sign proto.Signer) error {
	b, err := proto.AppendPacket(nil, p, nil, sign)
	if err != nil {
		return err
	}
	w.pkts = append(w.pkts, b)
	return nil
}

// TestWireMNHA runs a registration through the codec with RFC 4285 MN-HA
// authentication both ways, the home agent's side played by proto itself.
func TestWireMNHA(t *testing.T) {
	key := []byte("mn-ha shared key, 20b")
	auth, err := NewMNHAAuth(0x1234, key)
	if err != nil {
		t.Fatal(err)
	}
	wt := &wireTransport{}
	h := newHarness(t, func(c *Config) { c.Auth = auth; c.Transport = wt })
	h.set(eth0, wlan)
	if len(wt.pkts) != 1 {
		t.Fatalf("%d packets on the wire", len(wt.pkts))
	}
	var bu proto.Packet
	if err := proto.ParsePacket(wt.pkts[0], &bu, nil); err != nil {
		t.Fatalf("our BU does not parse: %v", err)
	}
	if bu.MH.Type != proto.TypeBU || bu.Src != coa1 || bu.HomeAddress != hoa || bu.MH.Flags != proto.FlagA|proto.FlagH || len(bu.MH.Options.BIDs) != 2 || !bu.MH.Options.BIDs[1].C || bu.MH.Options.BIDs[1].CoA != coa2 {
		t.Fatalf("BU on the wire: %+v", bu)
	}
	haMAC := proto.NewMNHA(key)
	if !bu.MH.Options.HasMNHAAuth || bu.MH.Options.MNHASPI != 0x1234 || !haMAC.Verify(bu.MHBytes, bu.MH.AuthOffset, bu.Src, bu.HomeAddress) {
		t.Fatal("the home agent cannot verify our BU's MN-HA authenticator")
	}

	reply := func(signKey []byte) *proto.Packet {
		t.Helper()
		r := proto.Packet{Src: ha, Dst: bu.Src, RoutingHome: hoa, HopLimit: 64}
		r.MH.Type = proto.TypeBA
		r.MH.Sequence = bu.MH.Sequence
		r.MH.Lifetime = bu.MH.Lifetime
		r.MH.Options.BIDs = append([]proto.BID(nil), bu.MH.Options.BIDs...)
		for i := range r.MH.Options.BIDs {
			r.MH.Options.BIDs[i].PrioStatus = 0
		}
		r.MH.Options.HasMNHAAuth, r.MH.Options.MNHASPI = true, 0x1234
		b, err := proto.AppendPacket(nil, &r, nil, proto.NewMNHA(signKey).Signer(bu.Src, hoa))
		if err != nil {
			t.Fatal(err)
		}
		var in proto.Packet
		if err := proto.ParsePacket(b, &in, nil); err != nil {
			t.Fatal(err)
		}
		return &in
	}
	h.deliver(reply([]byte("some other key")))
	if h.c.status().Counters.BAsIgnored[IgnoreAuth] != 1 {
		t.Fatalf("forged BA not ignored: %+v", h.c.status().Counters)
	}
	h.wantState(1, StatePending)
	h.deliver(reply(key))
	h.wantState(1, StateRegistered)
	h.wantState(2, StateRegistered)

	// wlan0 is lost: the de-registration names it in the Alternate CoA
	// option, which is the care-of address the authenticator covers.
	h.set(eth0)
	var dereg proto.Packet
	if err := proto.ParsePacket(wt.pkts[len(wt.pkts)-1], &dereg, nil); err != nil {
		t.Fatal(err)
	}
	if dereg.MH.Options.AltCoA != coa2 || dereg.Src != coa1 || dereg.MH.Lifetime != 0 {
		t.Fatalf("de-registration on the wire: %+v", dereg)
	}
	if !haMAC.Verify(dereg.MHBytes, dereg.MH.AuthOffset, coa2, hoa) {
		t.Fatal("the home agent cannot verify the de-registration's authenticator")
	}
}
