package rr

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/clock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// The wire check of what this package builds, as pkg/proto's tshark test
// does it: the packets go into a pcap (LINKTYPE_RAW) and Wireshark's MIPv6
// dissector decodes them field by field.

func writePcap(path string, pkts [][]byte) error {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write(le.AppendUint32(nil, 0xa1b2c3d4))
	b.Write(le.AppendUint16(nil, 2))
	b.Write(le.AppendUint16(nil, 4))
	b.Write(make([]byte, 8))
	b.Write(le.AppendUint32(nil, 65535))
	b.Write(le.AppendUint32(nil, 101)) // LINKTYPE_RAW
	for i, p := range pkts {
		b.Write(le.AppendUint32(nil, 1700000000+uint32(i)))
		b.Write(le.AppendUint32(nil, 0))
		b.Write(le.AppendUint32(nil, uint32(len(p))))
		b.Write(le.AppendUint32(nil, uint32(len(p))))
		b.Write(p)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

type pdmlField struct {
	Name   string      `xml:"name,attr"`
	Show   string      `xml:"show,attr"`
	Fields []pdmlField `xml:"field"`
}

type pdmlProto struct {
	Name   string      `xml:"name,attr"`
	Fields []pdmlField `xml:"field"`
	Protos []pdmlProto `xml:"proto"`
}

type decoded map[string][]string

func (d decoded) add(fs []pdmlField) {
	for _, f := range fs {
		if f.Name != "" {
			d[f.Name] = append(d[f.Name], f.Show)
		}
		d.add(f.Fields)
	}
}

func (d decoded) addProtos(ps []pdmlProto) {
	for _, pr := range ps {
		d["proto:"+pr.Name] = []string{"1"}
		d.add(pr.Fields)
		d.addProtos(pr.Protos)
	}
}

func runTshark(t *testing.T, pkts [][]byte) []decoded {
	t.Helper()
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		requireE2E(t, "tshark is not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "rr.pcap")
	if err := writePcap(path, pkts); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tshark, "-n", "-r", path, "-T", "pdml")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v: %s", err, stderr.String())
	}
	var doc struct {
		Packets []struct {
			Protos []pdmlProto `xml:"proto"`
		} `xml:"packet"`
	}
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("PDML: %v", err)
	}
	var res []decoded
	for _, p := range doc.Packets {
		d := decoded{}
		d.addProtos(p.Protos)
		res = append(res, d)
	}
	if len(res) != len(pkts) {
		t.Fatalf("tshark decoded %d packets, wrote %d", len(res), len(pkts))
	}
	return res
}

func hex64(b [8]byte) string { return fmt.Sprintf("0x%x", b[:]) }

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

func TestTsharkDecodesRR(t *testing.T) {
	clk := clock.NewFake(t0)
	m := newTestMN(t, clk)
	c := newTestCN(t, clk, CNConfig{})

	type pkt struct {
		name string
		b    []byte
		want map[string][]string
	}
	var all []pkt
	add := func(name string, p *proto.Packet, sign proto.Signer, want map[string][]string) *proto.Packet {
		b, err := proto.AppendPacket(nil, p, nil, sign)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var q proto.Packet
		if err := proto.ParsePacket(b, &q, nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want["ipv6.src"] = []string{p.Src.String()}
		want["ipv6.dst"] = []string{p.Dst.String()}
		want["mip6.csum"] = []string{fmt.Sprintf("0x%04x", binary.BigEndian.Uint16(q.MHBytes[4:]))}
		if q.MH.Options.HasAuthData {
			want["mip6.bad.auth"] = []string{colonHex(q.MHBytes[q.MH.AuthOffset : q.MH.AuthOffset+12])}
		}
		all = append(all, pkt{name, b, want})
		return &q
	}

	inits, _ := m.Need(tCN, tCoA2)
	hotiP, cotiP := inits[0], inits[1]
	hoti := add("HoTI", &hotiP, nil, map[string][]string{"mip6.mhtype": {"1"}, "mip6.hoti.cookie": {hex64(hotiP.MH.Cookie)}})
	coti := add("CoTI", &cotiP, nil, map[string][]string{"mip6.mhtype": {"2"}, "mip6.coti.cookie": {hex64(cotiP.MH.Cookie)}})
	var hot, cot proto.Packet
	if err := c.Answer(hoti, &hot); err != nil {
		t.Fatal(err)
	}
	if err := c.Answer(coti, &cot); err != nil {
		t.Fatal(err)
	}
	idx := fmt.Sprint(hot.MH.NonceIndex)
	add("HoT", &hot, nil, map[string][]string{"mip6.mhtype": {"3"}, "mip6.hot.nindex": {idx},
		"mip6.hot.cookie": {hex64(hotiP.MH.Cookie)}, "mip6.hot.token": {hex64(hot.MH.KeygenToken)}})
	add("CoT", &cot, nil, map[string][]string{"mip6.mhtype": {"4"}, "mip6.cot.nindex": {idx},
		// Wireshark shows the Care-of Keygen Token under the HoT's field
		// name (its CoT dissector reuses that field).
		"mip6.cot.cookie": {hex64(cotiP.MH.Cookie)}, "mip6.hot.token": {hex64(cot.MH.KeygenToken)}})
	m.HandleHoT(&hot)
	m.HandleCoT(&cot)

	p, sign, err := m.BU(BUParams{CN: tCN, CoA: tCoA2, BID: 2, Priority: 7, Sequence: 321, Lifetime: 400 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bu := add("BU", &p, sign, map[string][]string{
		"mip6.mhtype": {"5"}, "mip6.bu.seqnr": {"321"}, "mip6.bu.lifetime": {"100"},
		"mip6.bu.a_flag": {"1"}, "mip6.bu.h_flag": {"0"},
		"ipv6.opt.mipv6.home_address": {tHoA.String()},
		"mip6.ni.hni":                 {idx}, "mip6.ni.cni": {idx},
		"mip6.bi.bid": {"2"}, "mip6.bi.status": {"7"}, "mip6.bi.h_flag": {"0"},
	})
	if st, err := c.VerifyBU(bu); st != 0 || err != nil {
		t.Fatalf("CN refuses the BU: %v %v", st, err)
	}
	ba := proto.Packet{Src: tCN, Dst: tCoA2, RoutingHome: tHoA, MH: proto.Message{Type: proto.TypeBA,
		Sequence: 321, Lifetime: 100, Options: proto.Options{BIDs: []proto.BID{{ID: 2}}, HasAuthData: true}}}
	add("BA", &ba, c.BASigner(tCoA2, tCN), map[string][]string{
		"mip6.mhtype": {"6"}, "mip6.ba.status": {"0"}, "mip6.ba.seqnr": {"321"},
		"ipv6.routing.mipv6.home_address": {tHoA.String()}, "mip6.bi.bid": {"2"},
	})

	var raw [][]byte
	for _, x := range all {
		raw = append(raw, x.b)
	}
	got := runTshark(t, raw)
	for i, x := range all {
		t.Run(x.name, func(t *testing.T) {
			d := got[i]
			if d["proto:mipv6"] == nil {
				t.Fatalf("no Mobility Header decoded: %v", d)
			}
			for name, vals := range x.want {
				if g := d[name]; strings.Join(g, ",") != strings.Join(vals, ",") {
					t.Errorf("%s: tshark shows %q, want %q", name, g, vals)
				}
			}
			if d["_ws.malformed"] != nil || d["_ws.expert"] != nil {
				t.Errorf("tshark reports a problem: %v", d["_ws.expert.message"])
			}
		})
	}
}
