package rr

import (
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// benchBU returns a CN and the wire bytes of a BU it accepts.
func benchBU(b *testing.B) (*CN, []byte) {
	clk := clock.NewFake(t0)
	c := newTestCN(b, clk, CNConfig{})
	m := newTestMN(b, clk)
	pkts, err := m.Need(tCN, tCoA1)
	if err != nil {
		b.Fatal(err)
	}
	for i := range pkts {
		var out proto.Packet
		if err := c.Answer(&pkts[i], &out); err != nil {
			b.Fatal(err)
		}
		m.HandleHoT(&out)
		m.HandleCoT(&out)
	}
	p, sign, err := m.BU(BUParams{CN: tCN, CoA: tCoA1, BID: 1, Priority: 1, Sequence: 1, Lifetime: 420 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := proto.AppendPacket(nil, &p, nil, sign)
	if err != nil {
		b.Fatal(err)
	}
	return c, raw
}

// BenchmarkVerifyBU is the correspondent's check of one BU: nonce
// lookups, both keygen tokens, Kbm and the authenticator.
func BenchmarkVerifyBU(b *testing.B) {
	c, raw := benchBU(b)
	var p proto.Packet
	if err := proto.ParsePacket(raw, &p, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if st, err := c.VerifyBU(&p); st != 0 || err != nil {
			b.Fatal(st, err)
		}
	}
}

// BenchmarkParseVerifyBU adds parsing the packet (checksum included).
func BenchmarkParseVerifyBU(b *testing.B) {
	c, raw := benchBU(b)
	var p proto.Packet
	b.ReportAllocs()
	for b.Loop() {
		if err := proto.ParsePacket(raw, &p, nil); err != nil {
			b.Fatal(err)
		}
		if st, err := c.VerifyBU(&p); st != 0 || err != nil {
			b.Fatal(st, err)
		}
	}
}

// BenchmarkVerifyBUForged: a wrong authenticator costs the same.
func BenchmarkVerifyBUForged(b *testing.B) {
	c, raw := benchBU(b)
	raw[len(raw)-1] ^= 1
	var p proto.Packet
	err := proto.ParsePacket(raw, &p, nil)
	if err != nil {
		proto.SetChecksum(p.MHBytes, p.ChecksumSrc(), p.ChecksumDst())
		if err := proto.ParsePacket(raw, &p, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.VerifyBU(&p); err != ErrAuthenticator {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnswer is one HoT built from a HoTI.
func BenchmarkAnswer(b *testing.B) {
	c := newTestCN(b, clock.NewFake(t0), CNConfig{})
	in := hoti(tHoA)
	var out proto.Packet
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Answer(in, &out); err != nil {
			b.Fatal(err)
		}
	}
}
