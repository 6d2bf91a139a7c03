package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Path faults: a router of the lab stops forwarding (a black hole) or
// forwards only part of the packets (random loss) while its links keep
// carrier and addresses and the router itself still answers on its own
// addresses and sends Router Advertisements. From the MN's side nothing
// changes on the link (carrier, care-of address, default route): only the
// path beyond the access router dies, which is what path liveness must
// detect.
//
// A fault is one nftables table, FaultTable, in the router's namespace:
// a filter chain on the forward hook at FaultPriority (before any other
// chain) with a single counted drop rule. Each Fault call replaces the
// table in one nft transaction; clearing deletes it. Only forwarded
// packets pass the forward hook, so the router's own traffic (Neighbour
// Discovery, Router Advertisements, echo replies from its addresses) is
// never touched. The kernel of the test machines has no netem, hence
// nftables.

// FaultTable is the nftables table (family inet) that holds a node's fault.
const FaultTable = "mcoa_lab_fault"

// FaultPriority is the priority of the fault's forward chain: below every
// standard priority (raw is -300), so it sees forwarded packets first.
const FaultPriority = -1000

// FaultNodes are the nodes a fault may be put on: the routers between the
// MN's access links and the rest of the lab.
var FaultNodes = []string{AR1, AR2, AR3, Core}

// ErrBadFault is a fault that cannot be set: an unknown kind, a loss
// percentage out of range, or a node that is not in FaultNodes.
var ErrBadFault = errors.New("lab: bad fault")

// FaultKind names what a fault does to forwarded packets.
type FaultKind string

const (
	// FaultNone is no fault: the zero Fault clears any fault in force.
	FaultNone FaultKind = ""
	// FaultBlackhole drops every forwarded packet, both directions.
	FaultBlackhole FaultKind = "blackhole"
	// FaultLoss drops Fault.Percent percent of forwarded packets at random,
	// each direction independently (so a round trip is lost with
	// probability 1-(1-p)²).
	FaultLoss FaultKind = "loss"
)

// lossModulus is the resolution of FaultLoss: percentages are rounded to
// 1/lossModulus (0.01 %).
const lossModulus = 10000

// Fault is what a node does to the packets it forwards.
type Fault struct {
	Kind FaultKind `json:"kind"`
	// Percent is FaultLoss's share of dropped packets, 0 < Percent <= 100,
	// in steps of 0.01 (finer values are rounded).
	Percent float64 `json:"percent,omitempty"`
}

// String is the fault as the mcoa-lab fault command takes it: "blackhole",
// "loss 12.5%" or "clear".
func (f Fault) String() string {
	switch f.Kind {
	case FaultNone:
		return "clear"
	case FaultLoss:
		return "loss " + strconv.FormatFloat(f.Percent, 'f', -1, 64) + "%"
	}
	return string(f.Kind)
}

// normalize checks f and rounds a loss percentage to the rule's
// resolution.
func (f Fault) normalize() (Fault, error) {
	switch f.Kind {
	case FaultNone, FaultBlackhole:
		if f.Percent != 0 {
			return f, fmt.Errorf("%w: %s takes no percentage", ErrBadFault, f)
		}
		return f, nil
	case FaultLoss:
		if math.IsNaN(f.Percent) || f.Percent <= 0 || f.Percent > 100 {
			return f, fmt.Errorf("%w: loss %v%%: want 0 < PERCENT <= 100", ErrBadFault, f.Percent)
		}
		n := math.Round(f.Percent * lossModulus / 100)
		if n < 1 {
			return f, fmt.Errorf("%w: loss %v%%: the finest step is %v%%", ErrBadFault, f.Percent, 100.0/lossModulus)
		}
		f.Percent = n * 100 / lossModulus
		return f, nil
	}
	return f, fmt.Errorf("%w: unknown kind %q (want blackhole, loss or clear)", ErrBadFault, string(f.Kind))
}

// ParseFault reads a fault as the mcoa-lab fault command takes it:
// "blackhole", "loss PERCENT" (PERCENT may end in '%'; "loss" and the
// number may also be one word, "loss 50%" as String prints it) or "clear".
func ParseFault(args ...string) (Fault, error) {
	words := strings.Fields(strings.Join(args, " "))
	bad := fmt.Errorf("%w: %q (want blackhole, loss PERCENT or clear)", ErrBadFault, strings.Join(args, " "))
	if len(words) == 0 {
		return Fault{}, bad
	}
	var f Fault
	switch words[0] {
	case "blackhole", "black-hole":
		if len(words) != 1 {
			return f, bad
		}
		f.Kind = FaultBlackhole
	case "clear", "none":
		if len(words) != 1 {
			return f, bad
		}
	case "loss":
		if len(words) != 2 {
			return f, fmt.Errorf("%w: loss needs a PERCENT (0 < PERCENT <= 100)", ErrBadFault)
		}
		p, err := strconv.ParseFloat(strings.TrimSuffix(words[1], "%"), 64)
		if err != nil {
			return f, fmt.Errorf("%w: loss %q: not a number", ErrBadFault, words[1])
		}
		f = Fault{Kind: FaultLoss, Percent: p}
	default:
		return f, bad
	}
	return f.normalize()
}

// faultComment marks the fault's drop rule; FaultStatus reads the fault
// back from it.
const faultComment = "mcoa-lab fault: "

// faultScript returns the nft -f script that puts f in force, replacing
// whatever fault the node had, in one transaction ("table" first so that
// "delete" finds a table even where there was none).
func faultScript(f Fault) (string, error) {
	f, err := f.normalize()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", FaultTable, FaultTable)
	if f.Kind == FaultNone {
		return b.String(), nil
	}
	var match string
	// Loss 100% matches every packet (nft refuses "< modulus": the value
	// is out of numgen's range).
	if n := int(math.Round(f.Percent * lossModulus / 100)); f.Kind == FaultLoss && n < lossModulus {
		match = fmt.Sprintf("numgen random mod %d < %d ", lossModulus, n)
	}
	fmt.Fprintf(&b, "table inet %s {\n", FaultTable)
	fmt.Fprintf(&b, "\tchain forward {\n")
	fmt.Fprintf(&b, "\t\ttype filter hook forward priority %d; policy accept;\n", FaultPriority)
	fmt.Fprintf(&b, "\t\t%scounter drop comment %q\n", match, faultComment+f.String())
	fmt.Fprintf(&b, "\t}\n}\n")
	return b.String(), nil
}

func checkFaultNode(node string) error {
	if !slices.Contains(FaultNodes, node) {
		return fmt.Errorf("%w: node %q: faults go on a router that forwards the MN's paths: %s",
			ErrBadFault, node, strings.Join(FaultNodes, ", "))
	}
	return nil
}

func init() { toolPackages["nft"] = "nftables" }

// faultTimeout bounds each nft call.
const faultTimeout = 10 * time.Second

// nft runs nft inside node's namespace with stdin as its input.
func (l *Lab) nft(ctx context.Context, node string, stdin string, args ...string) ([]byte, error) {
	if err := CheckTools("nft"); err != nil {
		return nil, err
	}
	if !nsExists(l.NS(node)) {
		return nil, fmt.Errorf("%w: namespace %s missing", ErrDown, l.NS(node))
	}
	return output(ctx, stdin, "ip", append([]string{"netns", "exec", l.NS(node), "nft"}, args...)...)
}

// Fault puts f in force on node (one of FaultNodes), replacing any fault it
// had; the zero Fault (FaultNone) clears it and deletes FaultTable. Each
// new fault starts its drop counter at zero. Down removes the fault with
// the namespace.
func (l *Lab) Fault(node string, f Fault) error {
	if err := checkFaultNode(node); err != nil {
		return err
	}
	script, err := faultScript(f)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), faultTimeout)
	defer cancel()
	if _, err := l.nft(ctx, node, script, "-f", "-"); err != nil {
		return fmt.Errorf("lab: fault %s on %s: %w", f, node, err)
	}
	return nil
}

// FaultState is the fault in force on a node and what it dropped.
type FaultState struct {
	Node  string `json:"node"`
	Fault Fault  `json:"fault"` // Kind FaultNone: no fault
	// Dropped and DroppedBytes count the packets the fault dropped since it
	// was put in force, both directions together.
	Dropped      uint64 `json:"dropped"`
	DroppedBytes uint64 `json:"dropped_bytes"`
}

// FaultStatus returns the fault in force on node (one of FaultNodes) and
// its drop counter; without a fault, a FaultState of kind FaultNone.
func (l *Lab) FaultStatus(node string) (FaultState, error) {
	st := FaultState{Node: node}
	if err := checkFaultNode(node); err != nil {
		return st, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), faultTimeout)
	defer cancel()
	out, err := l.nft(ctx, node, "", "-j", "list", "tables", "inet")
	if err != nil {
		return st, fmt.Errorf("lab: fault status of %s: %w", node, err)
	}
	tables, err := parseNftJSON(out)
	if err != nil {
		return st, fmt.Errorf("lab: fault status of %s: %w", node, err)
	}
	if !slices.ContainsFunc(tables, func(o nftObject) bool { return o.Table != nil && o.Table.Name == FaultTable }) {
		return st, nil
	}
	out, err = l.nft(ctx, node, "", "-j", "list", "table", "inet", FaultTable)
	if err != nil {
		return st, fmt.Errorf("lab: fault status of %s: %w", node, err)
	}
	if err := parseFaultTable(out, &st); err != nil {
		return st, fmt.Errorf("lab: fault status of %s: %w", node, err)
	}
	return st, nil
}

// Faults returns the faults in force on the lab's FaultNodes whose
// namespace exists (none: an empty list, also where nft is missing).
func (l *Lab) Faults() ([]FaultState, error) {
	out := []FaultState{}
	if CheckTools("nft") != nil {
		return out, nil // no nft, no fault
	}
	var errs []error
	for _, n := range FaultNodes {
		if !nsExists(l.NS(n)) {
			continue
		}
		st, err := l.FaultStatus(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Fault.Kind != FaultNone {
			out = append(out, st)
		}
	}
	return out, errors.Join(errs...)
}

// nftObject is one element of the "nftables" array of nft -j.
type nftObject struct {
	Table *struct {
		Name string `json:"name"`
	} `json:"table"`
	Rule *struct {
		Comment string            `json:"comment"`
		Expr    []json.RawMessage `json:"expr"`
	} `json:"rule"`
}

func parseNftJSON(b []byte) ([]nftObject, error) {
	var doc struct {
		Nftables []nftObject `json:"nftables"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(b), &doc); err != nil {
		return nil, fmt.Errorf("parsing nft -j: %w", err)
	}
	return doc.Nftables, nil
}

// NftRule is one rule of nft -j output: its comment and what its counter
// counted (zero without a counter).
type NftRule struct {
	Comment        string
	Packets, Bytes uint64
}

// ParseNftRules returns the rules of nft -j output, in order.
func ParseNftRules(b []byte) ([]NftRule, error) {
	objs, err := parseNftJSON(b)
	if err != nil {
		return nil, err
	}
	var out []NftRule
	for _, o := range objs {
		if o.Rule == nil {
			continue
		}
		r := NftRule{Comment: o.Rule.Comment}
		for _, e := range o.Rule.Expr {
			var c struct {
				Counter *struct {
					Packets uint64 `json:"packets"`
					Bytes   uint64 `json:"bytes"`
				} `json:"counter"`
			}
			if json.Unmarshal(e, &c) == nil && c.Counter != nil {
				r.Packets, r.Bytes = c.Counter.Packets, c.Counter.Bytes
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// parseFaultTable reads the fault and its counter from nft -j list table.
func parseFaultTable(b []byte, st *FaultState) error {
	rules, err := ParseNftRules(b)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if !strings.HasPrefix(r.Comment, faultComment) {
			continue
		}
		f, err := ParseFault(strings.TrimPrefix(r.Comment, faultComment))
		if err != nil {
			return fmt.Errorf("table %s: rule %q: %w", FaultTable, r.Comment, err)
		}
		st.Fault, st.Dropped, st.DroppedBytes = f, r.Packets, r.Bytes
		return nil
	}
	return fmt.Errorf("table %s holds no fault rule (not made by mcoa-lab?)", FaultTable)
}
