package policy

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/mcoad/mcoad/pkg/config"
)

// Errors callers may test for with errors.Is.
var (
	// ErrInvalid marks a bad Config or State.
	ErrInvalid = errors.New("policy: invalid")
	// ErrUnavailable: no policy routing here (not Linux).
	ErrUnavailable = errors.New("policy: unavailable")
	// ErrClosed is returned by calls on a closed Engine.
	ErrClosed = errors.New("policy: closed")
)

// Offsets of the rule groups from Config.Priority.
const (
	offBypass      = 0
	offMark        = 10
	offHome        = 20
	maxHomeRules   = 60
	offUnreachable = 80
	offSuppress    = 90
	offDefault     = 91
	priorityRange  = 100
)

// Config tunes an Engine. A nil *Config is the default.
type Config struct {
	// Mark and Mask: the fwmark bits mcoad owns ([dataplane] mark, mask).
	// Mask must be one run of bits; Mark lies inside it.
	Mark, Mask uint32
	// TableBase: BID b's routing table is TableBase+b ([dataplane]
	// table_base).
	TableBase uint32
	// Priority of the first ip rule; the rules take Priority to
	// Priority+99.
	Priority int
	// NFTable is the name of the nftables table (family ip6).
	NFTable string
	// NoDefaultSource: do not route local sockets that bind no address
	// through the tunnels (only the home address's own traffic and marked
	// flows go there).
	NoDefaultSource bool
	// Adopt: New takes over the ip rules and the nftables table a
	// previous mcoad kept for a restart (Engine.Keep) instead of removing
	// them; the first Apply replaces or removes what is not wanted.
	Adopt  bool
	Logger *slog.Logger

	// Resolvers of policy users and cgroups; tests replace them.
	lookupUser   func(string) (uint32, error)
	lookupCgroup func(string) (id uint64, level uint32, err error)
}

func (c *Config) withDefaults() (Config, error) {
	var out Config
	if c != nil {
		out = *c
	}
	if out.Mark == 0 && out.Mask == 0 {
		out.Mark, out.Mask = config.DefaultMark, config.DefaultMask
	}
	if out.TableBase == 0 {
		out.TableBase = config.DefaultTableBase
	}
	if out.Priority == 0 {
		out.Priority = config.DefaultRulePriority
	}
	if out.NFTable == "" {
		out.NFTable = config.DefaultNFTable
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.lookupUser == nil {
		out.lookupUser = lookupUser
	}
	if out.lookupCgroup == nil {
		out.lookupCgroup = lookupCgroup
	}
	switch {
	case out.Mask == 0 || bits.OnesCount32(out.Mask)+bits.LeadingZeros32(out.Mask)+bits.TrailingZeros32(out.Mask) != 32:
		return out, fmt.Errorf("%w config: mask %#x is not one run of bits", ErrInvalid, out.Mask)
	case bits.OnesCount32(out.Mask) < 2:
		return out, fmt.Errorf("%w config: mask %#x leaves no room for a BID's mark", ErrInvalid, out.Mask)
	case out.Mark&^out.Mask != 0:
		return out, fmt.Errorf("%w config: mark %#x outside mask %#x", ErrInvalid, out.Mark, out.Mask)
	case out.TableBase < 256 || uint64(out.TableBase)+0xffff > 0xffffffff:
		return out, fmt.Errorf("%w config: table base %d (want 256 .. 2^32-65536)", ErrInvalid, out.TableBase)
	case out.Priority < 1 || out.Priority+priorityRange > 32765:
		return out, fmt.Errorf("%w config: rule priority %d (want 1..%d)", ErrInvalid, out.Priority, 32765-priorityRange)
	case len(out.NFTable) > 255 || strings.ContainsRune(out.NFTable, 0):
		return out, fmt.Errorf("%w config: nftables table name %q", ErrInvalid, out.NFTable)
	}
	return out, nil
}

// Table is BID's routing table.
func (c *Config) Table(bid uint16) uint32 { return c.TableBase + uint32(bid) }

// Binding is one binding alive now (registered with the home agent): the
// tunnel of BID goes out of Interface from CoA.
type Binding struct {
	BID       uint16
	Interface string
	CoA       netip.Addr
	Priority  uint8 // higher is preferred
}

// Policy is one flow policy: the flows that match go out through the first
// binding in Prefer that is alive. A zero field matches anything.
type Policy struct {
	Name      string
	Protocol  uint8 // IP protocol number (TCP, UDP, ICMPv6)
	SrcPrefix netip.Prefix
	DstPrefix netip.Prefix
	SrcPort   Ports // TCP and UDP only
	DstPort   Ports
	User      string // a user name or uid
	Cgroup    string // a cgroup v2 path
	Prefer    []Preference
}

// Ports is an inclusive port range; the zero value is any port.
type Ports struct{ Lo, Hi uint16 }

// Preference names a binding: by BID, or else by a path.Match pattern on
// its interface.
type Preference struct {
	BID       uint16
	Interface string
}

// State is everything Apply makes the kernel match.
type State struct {
	// HomeAddress of the mobile node.
	HomeAddress netip.Addr
	// Bindings alive now, in any order. With none, nothing is installed.
	Bindings []Binding
	// Policies in order: the first that matches a packet decides.
	Policies []Policy
	// Networks makes the node a mobile router (NEMO, RFC 3963); nil for
	// a mobile host. Unlike the rest, its guards stay installed while no
	// binding is alive.
	Networks *Networks
}

// Networks are a mobile router's mobile networks ([mobile_router]): their
// packets arriving on Ingress follow the home address's rules and the
// policies (those that match on neither user nor cgroup, which forwarded
// packets have not), and forwarding is allowed only between Ingress and
// the tunnels.
type Networks struct {
	Prefixes []netip.Prefix // mobile network prefixes
	Ingress  []string       // interfaces the mobile networks live on
	// Uplinks are the interfaces nothing may be forwarded to or from
	// untunnelled (the care-of interfaces).
	Uplinks []string
}

// sortBindings orders bindings best first: priority, then the lower BID.
func sortBindings(bs []Binding) []Binding {
	out := slices.Clone(bs)
	slices.SortFunc(out, func(a, b Binding) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return cmp.Compare(a.BID, b.BID)
	})
	return out
}

// resolveSorted returns the BID that p sends its flows to when the bindings
// best (sorted by sortBindings) are alive: the first entry of p.Prefer that
// names an alive BID or matches the interface of one (the best of them by
// priority, then lowest BID). ok is false when none does: those flows
// follow the priorities.
func resolveSorted(best []Binding, p Policy) (bid uint16, ok bool) {
	for _, pr := range p.Prefer {
		for _, b := range best {
			if pr.BID != 0 {
				if b.BID == pr.BID {
					return b.BID, true
				}
				continue
			}
			if m, err := path.Match(pr.Interface, b.Interface); err == nil && m {
				return b.BID, true
			}
		}
	}
	return 0, false
}

func checkState(st State) error {
	if err := checkNetworks(st.Networks); err != nil {
		return err
	}
	if len(st.Bindings) == 0 {
		return nil
	}
	if a := st.HomeAddress; !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
		return fmt.Errorf("%w state: home address %v is not a unicast IPv6 address", ErrInvalid, a)
	}
	seen := map[uint16]bool{}
	for _, b := range st.Bindings {
		if b.BID == 0 {
			return fmt.Errorf("%w state: BID 0 is reserved", ErrInvalid)
		}
		if seen[b.BID] {
			return fmt.Errorf("%w state: BID %d given twice", ErrInvalid, b.BID)
		}
		seen[b.BID] = true
		if b.CoA.IsValid() && (!b.CoA.Is6() || b.CoA.Is4In6() || b.CoA.Zone() != "") {
			return fmt.Errorf("%w state: bid %d: care-of address %v is not an IPv6 address", ErrInvalid, b.BID, b.CoA)
		}
	}
	return nil
}

func checkNetworks(n *Networks) error {
	if n == nil {
		return nil
	}
	if len(n.Prefixes) == 0 || len(n.Ingress) == 0 {
		return fmt.Errorf("%w state: a mobile router needs prefixes and ingress interfaces", ErrInvalid)
	}
	for _, p := range n.Prefixes {
		if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Masked() != p || p.Bits() == 0 {
			return fmt.Errorf("%w state: %v is not a mobile network prefix", ErrInvalid, p)
		}
	}
	for _, l := range [][]string{n.Ingress, n.Uplinks} {
		for _, name := range l {
			if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \x00*") {
				return fmt.Errorf("%w state: interface name %q", ErrInvalid, name)
			}
		}
	}
	for _, name := range n.Uplinks {
		if slices.Contains(n.Ingress, name) {
			return fmt.Errorf("%w state: %s is both an ingress interface and an uplink", ErrInvalid, name)
		}
	}
	return nil
}

// marks gives BIDs their slots under the mask: k = 1 .. 2^w-1, skipping the
// slot whose mark would be 0. A BID keeps its slot while it is alive; a dead
// BID's slot is taken back only when a new BID needs it.
type marks struct {
	mark, mask   uint32
	shift, width uint
	base         uint32 // Mark's value in the field
	byBID        map[uint16]uint32
	bySlot       map[uint32]uint16
}

func newMarks(mark, mask uint32) *marks {
	shift := uint(bits.TrailingZeros32(mask))
	width := uint(bits.OnesCount32(mask))
	return &marks{mark: mark, mask: mask, shift: shift, width: width, base: mark >> shift,
		byBID: map[uint16]uint32{}, bySlot: map[uint32]uint16{}}
}

func (m *marks) value(k uint32) uint32 {
	field := uint32(1)<<m.width - 1
	return ((m.base + k) & field) << m.shift
}

func (m *marks) slots() uint32 {
	if m.width >= 17 {
		return 1 << 17 // more than 65535 BIDs can ever need
	}
	return 1 << m.width
}

func (m *marks) usable(k uint32) bool { return k >= 1 && k < m.slots() && m.value(k) != 0 }

// assign gives every alive BID a slot and returns BID -> mark. BIDs that
// find no slot (more alive BIDs than the mask has room for) get no mark.
func (m *marks) assign(alive []uint16) map[uint16]uint32 {
	isAlive := map[uint16]bool{}
	for _, b := range alive {
		isAlive[b] = true
	}
	free := func(k uint32) bool { // not held by an alive BID
		b, held := m.bySlot[k]
		return !held || !isAlive[b]
	}
	take := func(b uint16, k uint32) {
		if old, held := m.bySlot[k]; held {
			delete(m.byBID, old)
		}
		if ok, had := m.byBID[b]; had {
			delete(m.bySlot, ok)
		}
		m.byBID[b], m.bySlot[k] = k, b
	}
	out := map[uint16]uint32{}
	var need []uint16
	for _, b := range alive {
		if k, ok := m.byBID[b]; ok {
			out[b] = m.value(k)
			continue
		}
		need = append(need, b)
	}
	slices.Sort(need)
	for _, b := range need {
		k := uint32(b)
		if !m.usable(k) || !free(k) {
			k = 0
			// Lowest slot nobody holds, else lowest held by a dead BID.
			for i := uint32(1); i < m.slots() && k == 0; i++ {
				if _, held := m.bySlot[i]; !held && m.usable(i) {
					k = i
				}
			}
			for i := uint32(1); i < m.slots() && k == 0; i++ {
				if m.usable(i) && free(i) {
					k = i
				}
			}
		}
		if k == 0 {
			continue
		}
		take(b, k)
		out[b] = m.value(k)
	}
	return out
}

// Rule is one ip rule (IPv6) as mcoad installs it.
type Rule struct {
	Priority          int
	Src               netip.Prefix // invalid: from all
	Mark, Mask        uint32       // Mask 0: no fwmark match
	Iif               string
	Table             uint32 // 0 with Unreachable
	Unreachable       bool
	SuppressPrefixlen int // -1: none
}

// String is the rule as `ip -6 rule` shows it (with "proto 0x4d" left out).
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Priority))
	b.WriteString(": from ")
	if r.Src.IsValid() {
		if r.Src.IsSingleIP() {
			b.WriteString(r.Src.Addr().String())
		} else {
			b.WriteString(r.Src.String())
		}
	} else {
		b.WriteString("all")
	}
	if r.Mask != 0 {
		// C's %#x, as iproute2 prints it: no 0x before a zero.
		mark := "0"
		if r.Mark != 0 {
			mark = fmt.Sprintf("%#x", r.Mark)
		}
		fmt.Fprintf(&b, " fwmark %s/%#x", mark, r.Mask)
	}
	if r.Iif != "" {
		b.WriteString(" iif " + r.Iif)
	}
	switch {
	case r.Unreachable:
		b.WriteString(" unreachable")
	case r.Table == 254:
		b.WriteString(" lookup main")
	default:
		fmt.Fprintf(&b, " lookup %d", r.Table)
	}
	if r.SuppressPrefixlen >= 0 {
		fmt.Fprintf(&b, " suppress_prefixlength %d", r.SuppressPrefixlen)
	}
	return b.String()
}

const mainTable = 254

// plan is what one State compiles to.
type plan struct {
	rules    []Rule
	policies []compiled // policy rules of the nftables table, in order
	restore  []uint16   // alive BIDs with a mark, ascending
	marks    map[uint16]uint32
	skipped  []error   // policies left out (user or cgroup unknown)
	networks *Networks // a mobile router's: prerouting and forward chains
}

// compiled is one policy resolved to a BID, ready for nftables.
type compiled struct {
	p      Policy
	bid    uint16
	mark   uint32
	uid    uint32
	cgID   uint64
	cgLvl  uint32
	hasUID bool
}

// networkRules are a mobile router's rules: packets from a mobile network
// prefix arriving on an ingress interface go where the home address's go,
// best binding first, and never out untunnelled.
func networkRules(c *Config, n *Networks, best []Binding) []Rule {
	if n == nil {
		return nil
	}
	var out []Rule
	each := func(fn func(src netip.Prefix, iif string)) {
		for _, p := range n.Prefixes {
			for _, i := range n.Ingress {
				fn(p, i)
			}
		}
	}
	for i, b := range best {
		if i == maxHomeRules {
			break
		}
		each(func(src netip.Prefix, iif string) {
			out = append(out, Rule{Priority: c.Priority + offHome + i, Src: src, Iif: iif, Table: c.Table(b.BID), SuppressPrefixlen: -1})
		})
	}
	each(func(src netip.Prefix, iif string) {
		out = append(out, Rule{Priority: c.Priority + offUnreachable, Src: src, Iif: iif, Unreachable: true, SuppressPrefixlen: -1})
	})
	return out
}

// compile turns a State into the rules and the nftables content. It
// allocates marks for new BIDs.
func compile(c *Config, m *marks, st State) plan {
	pl := plan{networks: st.Networks}
	if len(st.Bindings) == 0 {
		pl.rules = networkRules(c, st.Networks, nil) // only the guards
		return pl
	}
	best := sortBindings(st.Bindings)
	alive := make([]uint16, len(best))
	for i, b := range best {
		alive[i] = b.BID
	}
	pl.marks = m.assign(alive)
	hoa := netip.PrefixFrom(st.HomeAddress, 128)
	P := c.Priority
	rule := func(r Rule) { pl.rules = append(pl.rules, r) }
	rule(Rule{Priority: P + offBypass, Mark: c.Mark, Mask: c.Mask, Table: mainTable, SuppressPrefixlen: -1})
	for _, a := range careOfs(best, st.HomeAddress) {
		rule(Rule{Priority: P + offBypass, Src: netip.PrefixFrom(a, 128), Table: mainTable, SuppressPrefixlen: -1})
	}
	byBID := slices.Clone(alive)
	slices.Sort(byBID)
	for _, b := range byBID {
		if mk, ok := pl.marks[b]; ok {
			rule(Rule{Priority: P + offMark, Mark: mk, Mask: c.Mask, Table: c.Table(b), SuppressPrefixlen: -1})
			pl.restore = append(pl.restore, b)
		}
	}
	for i, b := range best {
		if i == maxHomeRules {
			break
		}
		rule(Rule{Priority: P + offHome + i, Src: hoa, Table: c.Table(b.BID), SuppressPrefixlen: -1})
	}
	rule(Rule{Priority: P + offUnreachable, Src: hoa, Unreachable: true, SuppressPrefixlen: -1})
	pl.rules = append(pl.rules, networkRules(c, st.Networks, best)...)
	if !c.NoDefaultSource {
		// Only packets without a mark of ours: the bypass mark must never
		// reach a tunnel, even when the main table has no route for it.
		rule(Rule{Priority: P + offSuppress, Iif: "lo", Mask: c.Mask, Table: mainTable, SuppressPrefixlen: 0})
		rule(Rule{Priority: P + offDefault, Iif: "lo", Mask: c.Mask, Table: c.Table(best[0].BID), SuppressPrefixlen: -1})
	}

	pl.policies, pl.skipped = compilePolicies(c, best, pl.marks, st.Policies)
	return pl
}

// careOfs returns the bindings' distinct care-of addresses, sorted.
func careOfs(best []Binding, hoa netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, b := range best {
		if b.CoA.IsValid() && b.CoA != hoa {
			out = append(out, b.CoA)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// compilePolicies resolves each policy to a live BID's mark and its user
// and cgroup to numbers; those it cannot resolve are skipped, with an
// error for the lookups that failed.
func compilePolicies(c *Config, best []Binding, marks map[uint16]uint32, policies []Policy) (out []compiled, skipped []error) {
	for _, p := range policies {
		bid, ok := resolveSorted(best, p)
		if !ok {
			continue
		}
		mk, ok := marks[bid]
		if !ok {
			continue
		}
		cp := compiled{p: p, bid: bid, mark: mk}
		if p.User != "" {
			uid, err := c.lookupUser(p.User)
			if err != nil {
				skipped = append(skipped, fmt.Errorf("policy %q: user %q: %w", p.Name, p.User, err))
				continue
			}
			cp.uid, cp.hasUID = uid, true
		}
		if p.Cgroup != "" {
			id, lvl, err := c.lookupCgroup(p.Cgroup)
			if err != nil {
				skipped = append(skipped, fmt.Errorf("policy %q: cgroup %q: %w", p.Name, p.Cgroup, err))
				continue
			}
			cp.cgID, cp.cgLvl = id, lvl
		}
		out = append(out, cp)
	}
	return out, skipped
}
