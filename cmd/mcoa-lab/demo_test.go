package main

import (
	"errors"
	"io"
	"testing"
)

func TestParseDemoFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want demoFlags
		err  string // "" : no error; "usage": exit status 2
	}{
		{args: nil, want: demoFlags{backend: "tun"}},
		{args: []string{"-vehicle"}, want: demoFlags{backend: "tun", vehicle: true}},
		{args: []string{"-ro", "-prefix", "mcoaabc123-"}, want: demoFlags{prefix: "mcoaabc123-", backend: "tun", ro: true}},
		{args: []string{"-dataplane", "none"}, want: demoFlags{backend: "none"}},
		{args: []string{"-ro", "-vehicle"}, err: "-vehicle and -ro are two demos: choose one"},
		{args: []string{"-vehicle", "-dataplane", "none"}, err: "-vehicle needs -dataplane tun"},
		{args: []string{"-ro", "-dataplane", "none"}, err: "-ro needs -dataplane tun"},
		{args: []string{"ro"}, err: `unexpected argument "ro"`},
		{args: []string{"-route-optimisation"}, err: "usage"},
		{args: []string{"-h"}, err: "usage"},
	} {
		got, err := parseDemoFlags(tc.args, io.Discard)
		var code exitError
		switch {
		case tc.err == "usage":
			if !errors.As(err, &code) || code != 2 {
				t.Errorf("%q: error %v, want exit status 2", tc.args, err)
			}
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %q", tc.args, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case got != tc.want:
			t.Errorf("%q: %+v, want %+v", tc.args, got, tc.want)
		}
	}
}
