// Package tsharktest decodes packets with Wireshark's dissectors for tests:
// the packets go into a pcap, tshark prints PDML, and every field comes
// back by name with its shown value, so tests check our wire format field
// by field against an implementation that is not ours.
package tsharktest

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Decoded maps field names (e.g. "mip6.bi.bid") to their shown values in
// document order; "proto:NAME" is present for every protocol layer.
type Decoded map[string][]string

// WritePcap writes bare IPv6 packets as a pcap file (LINKTYPE_RAW).
func WritePcap(path string, pkts [][]byte) error {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write(le.AppendUint32(nil, 0xa1b2c3d4))
	b.Write(le.AppendUint16(nil, 2))
	b.Write(le.AppendUint16(nil, 4))
	b.Write(make([]byte, 8))             // thiszone, sigfigs
	b.Write(le.AppendUint32(nil, 65535)) // snaplen
	b.Write(le.AppendUint32(nil, 101))   // LINKTYPE_RAW
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

// pdmlProto is a PDML <proto>; extension headers and the MH come nested.
type pdmlProto struct {
	Name   string      `xml:"name,attr"`
	Fields []pdmlField `xml:"field"`
	Protos []pdmlProto `xml:"proto"`
}

func (d Decoded) add(fs []pdmlField) {
	for _, f := range fs {
		if f.Name != "" {
			d[f.Name] = append(d[f.Name], f.Show)
		}
		d.add(f.Fields)
	}
}

func (d Decoded) addProtos(ps []pdmlProto) {
	for _, pr := range ps {
		d["proto:"+pr.Name] = []string{"1"}
		d.add(pr.Fields)
		d.addProtos(pr.Protos)
	}
}

// Decode runs tshark on pkts and returns one Decoded per packet. Without
// tshark the test is skipped, or fails when MCOA_E2E=1. MCOA_KEEP_PCAP=FILE
// keeps a copy of the capture for a look in Wireshark.
func Decode(t testing.TB, pkts [][]byte) []Decoded {
	t.Helper()
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("MCOA_E2E") == "1" {
			t.Fatal("MCOA_E2E=1 but tshark is not installed")
		}
		t.Skip("tshark is not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "mh.pcap")
	if err := WritePcap(path, pkts); err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("MCOA_KEEP_PCAP"); keep != "" {
		_ = WritePcap(keep, pkts)
	}
	cmd := exec.Command(tshark, "-n", "-r", path, "-T", "pdml")
	cmd.Env = append(os.Environ(), "HOME="+dir) // no user preferences
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
	res := make([]Decoded, 0, len(doc.Packets))
	for _, p := range doc.Packets {
		d := Decoded{}
		d.addProtos(p.Protos)
		res = append(res, d)
	}
	if len(res) != len(pkts) {
		t.Fatalf("tshark decoded %d packets, wrote %d", len(res), len(pkts))
	}
	return res
}
