package main

import (
	"errors"
	"testing"
	"time"
)

func TestParseUpFlags(t *testing.T) {
	f, err := parseUpFlags([]string{"-daemons", "-dataplane", "none", "-ra-min", "2s", "-prefix", "mcoaabc123-"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (upFlags{prefix: "mcoaabc123-", raMin: 2 * time.Second, timeout: 20 * time.Second, daemons: true, backend: "none"}); f != want {
		t.Errorf("parseUpFlags: %+v, want %+v", f, want)
	}
	for _, args := range [][]string{{"-vehicle", "-no-radvd"}, {"-daemons", "-no-radvd"}} {
		if _, err := parseUpFlags(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	var code exitError
	if _, err := parseUpFlags([]string{"-nope"}); !errors.As(err, &code) || code != 2 {
		t.Errorf("an unknown flag: %v, want exit status 2", err)
	}
}
