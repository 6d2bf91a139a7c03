package policy

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/pkg/config"
)

// pref names bindings as the configuration does: "bid:N", else an
// interface pattern.
func pref(ss ...string) []Preference {
	var out []Preference
	for _, s := range ss {
		if n, ok := strings.CutPrefix(s, "bid:"); ok {
			b, err := strconv.ParseUint(n, 10, 16)
			if err != nil {
				panic(err)
			}
			out = append(out, Preference{BID: uint16(b)})
			continue
		}
		out = append(out, Preference{Interface: s})
	}
	return out
}

// IP protocol numbers of the test policies.
const (
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

var (
	eth  = Binding{BID: 1, Interface: "eth0", CoA: netip.MustParseAddr("2001:db8:1::2"), Priority: 30}
	wlan = Binding{BID: 2, Interface: "wlan0", CoA: netip.MustParseAddr("2001:db8:2::2"), Priority: 20}
	wwan = Binding{BID: 3, Interface: "wwan0", CoA: netip.MustParseAddr("2001:db8:3::2"), Priority: 10}
	// A second Ethernet binding, less preferred than the first.
	eth1 = Binding{BID: 7, Interface: "eth1", CoA: netip.MustParseAddr("2001:db8:4::2"), Priority: 5}
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name   string
		alive  []Binding
		prefer []string
		bid    uint16
		ok     bool
	}{
		{"first preference alive", []Binding{eth, wlan, wwan}, []string{"wlan*", "eth*"}, 2, true},
		{"first dead, second alive", []Binding{eth, wwan}, []string{"wlan*", "eth*"}, 1, true},
		{"all dead", []Binding{wwan}, []string{"wlan*", "eth*"}, 0, false},
		{"no bindings", nil, []string{"eth*"}, 0, false},
		{"pattern matches two: best priority", []Binding{eth1, eth, wlan}, []string{"eth*"}, 1, true},
		{"pattern matches two, best dead", []Binding{eth1, wlan}, []string{"eth*"}, 7, true},
		{"equal priorities: lower BID", []Binding{{BID: 9, Interface: "eth9", Priority: 1}, {BID: 4, Interface: "eth4", Priority: 1}}, []string{"eth*"}, 4, true},
		{"BID preference", []Binding{eth, wlan, wwan}, []string{"bid:3", "eth*"}, 3, true},
		{"BID alone", []Binding{eth, wlan, wwan}, []string{"bid:2"}, 2, true}, // config parses a bare "2" as bid:2 (TestParsePolicy)
		{"BID dead, pattern next", []Binding{eth, wlan}, []string{"bid:3", "wlan0"}, 2, true},
		{"exact name", []Binding{eth, wlan, wwan}, []string{"wwan0"}, 3, true},
		{"character class", []Binding{eth, wlan, wwan}, []string{"w[w]an?"}, 3, true},
		{"star matches all: best", []Binding{wwan, wlan, eth}, []string{"*"}, 1, true},
		{"no match at all", []Binding{eth, wlan, wwan}, []string{"ppp*", "bid:9"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bid, ok := resolveSorted(sortBindings(tt.alive), Policy{Name: "p", Prefer: pref(tt.prefer...)})
			if bid != tt.bid || ok != tt.ok {
				t.Errorf("resolve(%v, %v) = %d, %v; want %d, %v", tt.alive, tt.prefer, bid, ok, tt.bid, tt.ok)
			}
		})
	}
}

func TestMarks(t *testing.T) {
	m := newMarks(config.DefaultMark, config.DefaultMask)
	got := m.assign([]uint16{3, 1, 2})
	want := map[uint16]uint32{1: 0x4e000000, 2: 0x4f000000, 3: 0x50000000}
	for b, mk := range want {
		if got[b] != mk {
			t.Errorf("bid %d: mark %#x, want %#x", b, got[b], mk)
		}
	}
	// 179 = 0x100 - 0x4d would be mark 0: it gets the lowest free slot.
	got = m.assign([]uint16{1, 2, 3, 179})
	if got[179] != 0x51000000 {
		t.Errorf("bid 179: mark %#x, want 0x51000000 (slot 4)", got[179])
	}
	// BID 4 wants slot 4, held by the alive 179: lowest free slot, 5.
	got = m.assign([]uint16{1, 2, 3, 179, 4})
	if got[4] != 0x52000000 || got[179] != 0x51000000 {
		t.Errorf("bid 4: %#x, bid 179: %#x; want 0x52000000 and 0x51000000", got[4], got[179])
	}
	// BIDs keep their marks while alive; a dead BID's slot is reused
	// only when needed.
	got = m.assign([]uint16{2})
	if got[2] != 0x4f000000 {
		t.Errorf("bid 2 after others died: %#x", got[2])
	}
	got = m.assign([]uint16{2, 1})
	if got[1] != 0x4e000000 {
		t.Errorf("bid 1 back: %#x, want its old 0x4e000000", got[1])
	}
	// Every mark is non-zero, under the mask, not the bypass mark, and
	// distinct, even with more BIDs than slots.
	var many []uint16
	for b := uint16(1); b <= 300; b++ {
		many = append(many, b)
	}
	got = m.assign(many)
	if len(got) != 254 {
		t.Errorf("%d BIDs got a mark, want 254 (8 bits less the bypass and 0)", len(got))
	}
	seen := map[uint32]uint16{}
	for b, mk := range got {
		if mk == 0 || mk == config.DefaultMark || mk&^config.DefaultMask != 0 {
			t.Errorf("bid %d: bad mark %#x", b, mk)
		}
		if o, dup := seen[mk]; dup {
			t.Errorf("bids %d and %d share mark %#x", o, b, mk)
		}
		seen[mk] = b
	}
	// A 16-bit mask in the low bits: mark = Mark + BID.
	m = newMarks(0x100, 0xffff)
	got = m.assign([]uint16{1, 40000})
	if got[1] != 0x101 || got[40000] != 0x100+40000 {
		t.Errorf("16-bit field: %#x %#x", got[1], got[40000])
	}
}

func TestConfig(t *testing.T) {
	bad := []Config{
		{Mark: 0x4d000000, Mask: 0xf0f00000},
		{Mark: 0x4d, Mask: 0xff000000},
		{Mark: 0, Mask: 0x80000000},
		{TableBase: 100},
		{Priority: 32700},
	}
	for _, c := range bad {
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	c, err := (*Config)(nil).withDefaults()
	if err != nil || c.Mark != config.DefaultMark || c.Mask != config.DefaultMask || c.TableBase != 1000 || c.Priority != 5100 || c.NFTable != "mcoad" {
		t.Errorf("defaults: %+v %v", c, err)
	}
}
