package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/mcoad/mcoad/internal/lab"
)

const faultUsage = "usage: mcoa-lab fault NODE blackhole|loss PERCENT|clear (NODE: ar1 ar2 ar3 core)"

// cmdFault puts a path fault on a router of the running lab: its links and
// addresses stay, only what it forwards is dropped.
func cmdFault(ctx context.Context, stateFile string, args []string) error {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, faultUsage)
		return exitError(2)
	}
	node := args[0]
	f, err := lab.ParseFault(args[1:]...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcoa-lab fault: %v\n%s\n", err, faultUsage)
		return exitError(2)
	}
	if err := needRoot(); err != nil {
		return err
	}
	l, _, err := current(stateFile)
	if err != nil {
		return err
	}
	if !l.Exists() {
		return fmt.Errorf("the lab %s is gone; run `mcoa-lab down` then `mcoa-lab up`", l.Prefix)
	}
	// What the old fault dropped, for the message (the counter goes with it).
	old, err := l.FaultStatus(node)
	if err != nil {
		return err
	}
	if err := l.Fault(node, f); err != nil {
		return err
	}
	var was string
	if old.Fault.Kind != lab.FaultNone {
		was = fmt.Sprintf(" (replacing %s, which dropped %d packets)", old.Fault, old.Dropped)
	}
	switch f.Kind {
	case lab.FaultNone:
		if old.Fault.Kind == lab.FaultNone {
			fmt.Printf("%s: no fault\n", node)
		} else {
			fmt.Printf("%s: cleared %s, which dropped %d packets; it forwards everything again\n", node, old.Fault, old.Dropped)
		}
	case lab.FaultBlackhole:
		fmt.Printf("%s: black hole: every packet it forwards is dropped, both directions; its links, addresses and Router Advertisements stay%s\n", node, was)
	case lab.FaultLoss:
		fmt.Printf("%s: loss %v%% of the packets it forwards, each direction on its own; its links, addresses and Router Advertisements stay%s\n", node, f.Percent, was)
	}
	if f.Kind != lab.FaultNone {
		fmt.Printf("  drops counted in nft table inet %s of %s (mcoa-lab status); undo: mcoa-lab fault %s clear\n", lab.FaultTable, l.NS(node), node)
	}
	return nil
}

// printFaults lists the faults in force, if any.
func printFaults(w io.Writer, faults []lab.FaultState) {
	if len(faults) == 0 {
		return
	}
	fmt.Fprintf(w, "faults:\n")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, f := range faults {
		fmt.Fprintf(tw, "  %s\t%s\t%d dropped\t(mcoa-lab fault %s clear)\n", f.Node, strings.TrimSpace(f.Fault.String()), f.Dropped, f.Node)
	}
	tw.Flush()
}
