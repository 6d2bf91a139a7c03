package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
)

// capture is tshark running in a lab node, writing a pcapng file.
type capture struct{ *lab.Capture }

// startCapture starts tshark on node's iface, capturing what carries
// Mobility Headers, and waits until it captures.
func (e *env) startCapture(node, iface string) *capture {
	e.t.Helper()
	c, err := e.lab.StartCapture(e.ctx, node, iface, lab.MHFilter, filepath.Join(e.t.TempDir(), node+"-"+iface+".pcapng"))
	if err != nil {
		e.t.Fatal(err)
	}
	return &capture{c}
}

// waitGrowth waits (at most 10s) until the capture file has grown by n
// bytes since capture started.
func (c *capture) waitGrowth(e *env, n int64) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("capture file grown by %d bytes", n), 10*time.Second, func() error {
		st, err := os.Stat(c.File)
		if err != nil {
			return err
		}
		if st.Size() < c.Size0+n {
			return fmt.Errorf("%d bytes, %d at start", st.Size(), c.Size0)
		}
		return nil
	})
}

// stop ends the capture, so that the file holds all it captured.
func (c *capture) stop(t *testing.T) {
	t.Helper()
	if err := c.Stop(); err != nil {
		t.Error(err)
	}
}

// mhPacket is one Mobility Header packet as Wireshark decodes it.
type mhPacket struct {
	frame        int
	src, dst     string
	mhType       int
	seq          int // BU or BA sequence number
	aFlag, hFlag string
	lifetime     string
	baStatus     string
	bids         []string
	bidStatus    []string // priority in a BU, status in a BA
	bidC         []string // Wireshark's "H" flag: the draft's C flag
	bidCoA       []string
}

var mhFields = []string{
	"frame.number", "ipv6.src", "ipv6.dst", "mip6.mhtype",
	"mip6.bu.seqnr", "mip6.bu.a_flag", "mip6.bu.h_flag", "mip6.bu.lifetime",
	"mip6.ba.seqnr", "mip6.ba.status",
	"mip6.bi.bid", "mip6.bi.status", "mip6.bi.h_flag", "mip6.bi.coa_ipv6",
}

// readMH decodes the Mobility Header packets of a capture with tshark.
func readMH(ctx context.Context, t *testing.T, file string) []mhPacket {
	t.Helper()
	args := []string{"-n", "-r", file, "-Y", "mipv6", "-T", "fields",
		"-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range mhFields {
		args = append(args, "-e", f)
	}
	out, err := exec.CommandContext(ctx, "tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", file, err)
	}
	var pkts []mhPacket
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != len(mhFields) {
			t.Fatalf("tshark line %q: %d fields, want %d", line, len(f), len(mhFields))
		}
		p := mhPacket{src: f[1], dst: f[2], aFlag: f[5], hFlag: f[6], lifetime: f[7], baStatus: f[9],
			bids: split(f[10]), bidStatus: split(f[11]), bidC: split(f[12]), bidCoA: split(f[13])}
		p.frame, _ = strconv.Atoi(f[0])
		p.mhType, _ = strconv.Atoi(f[3])
		if p.mhType == 5 {
			p.seq, _ = strconv.Atoi(f[4])
		} else {
			p.seq, _ = strconv.Atoi(f[8])
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// TestWire: the registration of Figure 3 on the wire, captured on the HA's
// link to the core and decoded by Wireshark's dissector: one Binding Update
// from one care-of address with the A and H flags and three BID sub-options,
// each with the C flag, its interface's priority and care-of address; one
// Binding Acknowledgement to it with status 0 and the three BIDs accepted
// (status 0).
func TestWire(t *testing.T) {
	t.Parallel()
	e := setup(t, opts{noMN: true, tools: []string{"tshark"}})
	c := e.startCapture(lab.HA, lab.Uplink)
	e.startMN()
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })
	// dumpcap hands packets over in blocks, up to a timeout after they
	// arrived: wait until the file has grown by at least the BU and the BA.
	c.waitGrowth(e, 2*118)
	c.stop(t)

	pkts := readMH(e.ctx, t, c.File)
	for _, p := range pkts {
		t.Logf("frame %d: %s -> %s type %d seq %d BIDs %v prio/status %v C %v CoAs %v BA status %q",
			p.frame, p.src, p.dst, p.mhType, p.seq, p.bids, p.bidStatus, p.bidC, p.bidCoA, p.baStatus)
	}
	var bus, bas []mhPacket
	for _, p := range pkts {
		switch p.mhType {
		case 5:
			bus = append(bus, p)
		case 6:
			bas = append(bas, p)
		default:
			t.Errorf("unexpected Mobility Header type %d in frame %d", p.mhType, p.frame)
		}
	}
	if len(bus) != 1 || len(bas) != 1 {
		t.Fatalf("%d BUs and %d BAs on the wire, want one bulk BU and its BA", len(bus), len(bas))
	}
	bu, ba := bus[0], bas[0]

	// The BU.
	var coas []string
	for _, n := range ifaces {
		coas = append(coas, e.coas[n].String())
	}
	if !slices.Contains(coas, bu.src) || bu.dst != lab.HAAddr.String() {
		t.Errorf("BU %s -> %s, want from a care-of address %v to %s", bu.src, bu.dst, coas, lab.HAAddr)
	}
	if bu.aFlag != "1" || bu.hFlag != "1" || bu.lifetime != "105" {
		t.Errorf("BU A %q H %q lifetime %q, want A and H set and 105 (420 s)", bu.aFlag, bu.hFlag, bu.lifetime)
	}
	if len(bu.bids) != 3 || len(bu.bidStatus) != 3 || len(bu.bidC) != 3 || len(bu.bidCoA) != 3 {
		t.Fatalf("BU carries BIDs %v priorities %v C flags %v CoAs %v, want three complete BID sub-options",
			bu.bids, bu.bidStatus, bu.bidC, bu.bidCoA)
	}
	got := map[string]string{}
	for i := range bu.bids {
		got[bu.bids[i]] = fmt.Sprintf("prio %s C %s coa %s", bu.bidStatus[i], bu.bidC[i], bu.bidCoA[i])
	}
	want := map[string]string{}
	for _, n := range ifaces {
		want[strconv.Itoa(int(e.bids[n]))] = fmt.Sprintf("prio %d C 1 coa %s", priority[n], e.coas[n])
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("BU BID sub-options %v, want %v", got, want)
	}

	// The BA.
	if ba.src != lab.HAAddr.String() || ba.dst != bu.src {
		t.Errorf("BA %s -> %s, want %s -> %s", ba.src, ba.dst, lab.HAAddr, bu.src)
	}
	if ba.baStatus != "0" || ba.seq != bu.seq {
		t.Errorf("BA status %q sequence %d, want 0 and the BU's %d", ba.baStatus, ba.seq, bu.seq)
	}
	slices.Sort(ba.bids)
	wantBIDs := slices.Sorted(func(yield func(string) bool) {
		for _, n := range ifaces {
			if !yield(strconv.Itoa(int(e.bids[n]))) {
				return
			}
		}
	})
	if !slices.Equal(ba.bids, wantBIDs) {
		t.Errorf("BA BIDs %v, want %v", ba.bids, wantBIDs)
	}
	if len(ba.bidStatus) != 3 || slices.ContainsFunc(ba.bidStatus, func(s string) bool { return s != "0" }) {
		t.Errorf("BA BID statuses %v, want three 0 (accepting)", ba.bidStatus)
	}
}
