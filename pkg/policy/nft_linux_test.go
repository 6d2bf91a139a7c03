package policy

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

var nftMsgNames = map[uint16]string{
	unix.NFT_MSG_NEWTABLE: "NEWTABLE", unix.NFT_MSG_DELTABLE: "DELTABLE",
	unix.NFT_MSG_NEWCHAIN: "NEWCHAIN", unix.NFT_MSG_NEWRULE: "NEWRULE",
}

// TestTableBatchBytes checks, byte for byte, the batch that replaces the
// table: one transaction that adds, deletes and adds the table again with
// its chains and rules (the kernel test checks that the kernel reads it back
// as table.golden says).
func TestTableBatchBytes(t *testing.T) {
	c := testConfig()
	m := newMarks(c.Mark, c.Mask)
	pl := compile(&c, m, State{HomeAddress: hoa, Bindings: []Binding{eth, wlan, wwan}, Policies: testPolicies(t)})
	tab := buildTable(&c, &pl)
	var dump strings.Builder
	var types []string
	conn, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		for _, msg := range req {
			b, err := msg.MarshalBinary()
			if err != nil {
				return nil, err
			}
			name := fmt.Sprintf("%#x", msg.Header.Type)
			switch {
			case msg.Header.Type == unix.NFNL_MSG_BATCH_BEGIN:
				name = "BATCH_BEGIN"
			case msg.Header.Type == unix.NFNL_MSG_BATCH_END:
				name = "BATCH_END"
			case uint16(msg.Header.Type)>>8 == unix.NFNL_SUBSYS_NFTABLES:
				name = nftMsgNames[uint16(msg.Header.Type)&0xff]
			}
			types = append(types, name)
			// The netlink header's length and sequence number are the
			// transport's; everything after it is ours.
			fmt.Fprintf(&dump, "%s flags %#x\n%s", name, uint16(msg.Header.Flags), hex.Dump(b[16:]))
		}
		return req, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	tab.queue(conn)
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(types, " ")
	want := "BATCH_BEGIN NEWTABLE DELTABLE NEWTABLE NEWCHAIN" + strings.Repeat(" NEWRULE", 8) + " NEWCHAIN NEWRULE BATCH_END"
	if got != want {
		t.Errorf("batch:\n got %s\nwant %s", got, want)
	}
	golden(t, "batch.golden", dump.String())
}

func TestFormatRule(t *testing.T) {
	for _, tt := range []struct {
		r    Rule
		want string
	}{
		{Rule{Priority: 5100, Mark: 0x4d000000, Mask: 0xff000000, Table: 254, SuppressPrefixlen: -1}, "5100: from all fwmark 0x4d000000/0xff000000 lookup main"},
		{Rule{Priority: 5180, Src: netip.PrefixFrom(hoa, 128), Unreachable: true, SuppressPrefixlen: -1}, "5180: from 2001:db8:aaaa::100 unreachable"},
		{Rule{Priority: 5190, Iif: "lo", Table: 254, SuppressPrefixlen: 0}, "5190: from all iif lo lookup main suppress_prefixlength 0"},
		{Rule{Priority: 7, Src: netip.MustParsePrefix("2001:db8::/32"), Table: 1001, SuppressPrefixlen: -1}, "7: from 2001:db8::/32 lookup 1001"},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
		// Through netlink's form and back.
		if got := fromNetlink(*toNetlink(tt.r)).String(); got != tt.want {
			t.Errorf("netlink round trip: got %q, want %q", got, tt.want)
		}
	}
}
