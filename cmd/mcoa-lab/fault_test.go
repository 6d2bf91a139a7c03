package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/internal/lab"
)

func TestPrintFaults(t *testing.T) {
	var b strings.Builder
	printFaults(&b, nil)
	if b.Len() != 0 {
		t.Errorf("no faults printed %q", b.String())
	}
	printFaults(&b, []lab.FaultState{
		{Node: lab.AR1, Fault: lab.Fault{Kind: lab.FaultBlackhole}, Dropped: 12},
		{Node: lab.Core, Fault: lab.Fault{Kind: lab.FaultLoss, Percent: 2.5}, Dropped: 3},
	})
	want := "faults:\n" +
		"  ar1   blackhole  12 dropped  (mcoa-lab fault ar1 clear)\n" +
		"  core  loss 2.5%  3 dropped   (mcoa-lab fault core clear)\n"
	if b.String() != want {
		t.Errorf("printFaults:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Bad arguments are usage errors (exit status 2), refused before any lab is
// looked for.
func TestFaultUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"ar1"}, {"-h"}, {"ar1", "loss"}, {"ar1", "loss", "0"}, {"ar1", "loss", "101"}, {"ar1", "delay", "10"}} {
		var code exitError
		if err := cmdFault(t.Context(), "/nonexistent/state.json", args); !errors.As(err, &code) || code != 2 {
			t.Errorf("fault %q: %v, want exit status 2", args, err)
		}
	}
}
