package iface

import (
	"net/netip"
	"time"
)

// CareOf is one binding the mobile node should have: a care-of address
// and its BID, or (HomeLink) an interface attached to the home link. The
// daemon converts it to the engine's bul.CareOf field by field.
type CareOf struct {
	BID      uint16     `json:"bid"`
	Iface    string     `json:"interface"`
	Ifindex  int        `json:"ifindex"`
	Addr     netip.Addr `json:"coa"`
	Priority uint8      `json:"priority"`
	// HomeLink: Iface is attached to the home link. Addr is then the
	// interface's address in the home prefix (the home address when it is
	// configured there), or the home address when the link was recognised
	// by Router Advertisement before any address came up. It is never a
	// care-of address: the engine applies draft section 3.3 / 5.5.
	HomeLink bool `json:"home_link"`
}

// IfState summarises an interface for people (the control API).
type IfState string

const (
	StateCoA       IfState = "coa"        // has a care-of address
	StateHome      IfState = "home"       // attached to the home link
	StateNoAddress IfState = "no-address" // up with carrier, no usable care-of address yet
	StateNoCarrier IfState = "no-carrier" // administratively up, no carrier (or dormant)
	StateDown      IfState = "down"       // administratively down
	StateExcluded  IfState = "excluded"   // excluded by a Rule
	StateIgnored   IfState = "ignored"    // loopback, tunnel, TUN or other virtual device (see Reason)
)

// Interface is one link as the watcher sees it, for /v1/interfaces.
type Interface struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	MAC   string `json:"mac,omitempty"`
	Kind  string `json:"kind"` // netlink link kind: device, veth, tuntap, ...
	// BID is the BID of CoA or of the home-link entry: the interface's own
	// in BIDPerInterface mode (shown even while it has no care-of
	// address, once it had one), CoA's in BIDPerCoA mode. 0: none.
	BID uint16 `json:"bid,omitempty"`
	// CoA is the care-of address chosen on this interface (in BIDPerCoA
	// mode the one BIDPerInterface would choose; Addrs has all of them).
	CoA      netip.Addr `json:"coa,omitzero"`
	Priority uint8      `json:"priority"`
	State    IfState    `json:"state"`
	Reason   string     `json:"reason,omitempty"`
	HomeLink bool       `json:"home_link"`
	Metered  bool       `json:"metered"`
	Up       bool       `json:"up"`
	Carrier  bool       `json:"carrier"`
	Addrs    []Addr     `json:"addrs"`
	// Routers and Prefixes are what Router Advertisements on this link
	// announce now; Moves counts the new routers or prefixes seen
	// (movement), LastMove is the last one.
	Routers  []netip.Addr   `json:"routers,omitempty"`
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
	Moves    uint64         `json:"moves,omitempty"`
	LastMove time.Time      `json:"last_move,omitzero"`
}

// Addr is one IPv6 address of an interface.
type Addr struct {
	Prefix     netip.Prefix `json:"prefix"`
	Scope      string       `json:"scope"` // global, site, link, host
	Tentative  bool         `json:"tentative,omitempty"`
	DADFailed  bool         `json:"dadfailed,omitempty"`
	Deprecated bool         `json:"deprecated,omitempty"`
	Temporary  bool         `json:"temporary,omitempty"`
	Home       bool         `json:"home,omitempty"` // the home address or inside the home prefix
	// CoA: usable as a care-of address. BID is its BID in BIDPerCoA mode.
	CoA bool   `json:"coa"`
	BID uint16 `json:"bid,omitempty"`
	// Lifetimes in seconds; Forever means infinite.
	PreferredLft uint32 `json:"preferred_lft"`
	ValidLft     uint32 `json:"valid_lft"`
}

// Forever is the infinite address lifetime.
const Forever = ^uint32(0)

// Snapshot is the watcher's view at one time. Snapshots are shared: do not
// modify one you received.
type Snapshot struct {
	// Generation counts the changes of CareOfs (1 for the first snapshot).
	Generation uint64    `json:"generation"`
	Time       time.Time `json:"time"`
	Mode       BIDMode   `json:"bid_mode"`
	// CareOfs is sorted by BID; BIDs are unique and never 0.
	CareOfs []CareOf `json:"care_ofs"`
	// Interfaces is sorted by index.
	Interfaces []Interface `json:"interfaces"`
}

// CareOf returns the entry with the given BID.
func (s *Snapshot) CareOf(bid uint16) (CareOf, bool) {
	for _, c := range s.CareOfs {
		if c.BID == bid {
			return c, true
		}
	}
	return CareOf{}, false
}

// Interface returns the interface called name.
func (s *Snapshot) Interface(name string) (Interface, bool) {
	for _, i := range s.Interfaces {
		if i.Name == name {
			return i, true
		}
	}
	return Interface{}, false
}

func equalCareOfs(a, b []CareOf) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
