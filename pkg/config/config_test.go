package config

import (
	"errors"
	"strings"
	"testing"
)

// lines joins its arguments as the lines of a file, so that line numbers
// in the tests are argument positions: lines("a", "b") has "b" on line 2.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// mnHead is a valid [mobile_node] of four lines; cases that add to it
// start on line 5.
var mnHead = []string{
	"[mobile_node]",
	`home_address = "2001:db8:aaaa::100"`,
	`home_agent   = "2001:db8:aaaa::1"`,
	`home_prefix  = "2001:db8:aaaa::/64"`,
}

func withHead(head []string, ls ...string) string {
	return lines(append(append([]string{}, head...), ls...)...)
}

type wantErr struct {
	line int
	key  string
	msg  string // a substring of Msg
}

// noRead is the file reader for tests that must not touch the disk.
func noRead(name string) ([]byte, error) {
	return nil, errors.New("no files in this test")
}

// checkRejected checks that a parse gave no configuration and the wanted
// errors.
func checkRejected[C any](t *testing.T, file string, c *C, err error, want []wantErr) {
	t.Helper()
	if c != nil {
		t.Errorf("got a configuration with errors")
	}
	checkErrs(t, file, err, want)
}

func checkErrs(t *testing.T, file string, err error, want []wantErr) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %d", len(want))
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %T %v is not Errors", err, err)
	}
	show := func() string {
		var b strings.Builder
		for _, e := range es {
			b.WriteString("\n\t" + e.Error())
		}
		return b.String()
	}
	if len(es) != len(want) {
		t.Fatalf("got %d errors, want %d:%s", len(es), len(want), show())
	}
	for i, w := range want {
		e := es[i]
		if e.File != file || e.Line != w.line || e.Key != w.key || !strings.Contains(e.Msg, w.msg) {
			t.Errorf("error %d = %q (line %d, key %q)\n\twant line %d, key %q, message containing %q%s",
				i, e.Error(), e.Line, e.Key, w.line, w.key, w.msg, show())
		}
	}
}

func TestMetricsAddress(t *testing.T) {
	base := "[mobile_node]\nhome_address = \"2001:db8:aaaa::100\"\nhome_agent = \"2001:db8:aaaa::1\"\nhome_prefix = \"2001:db8:aaaa::/64\"\n[control]\n"
	cfg, err := ParseMN("m.toml", []byte(base+"metrics_address = \"[::1]:9477\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Control.MetricsAddress != "[::1]:9477" {
		t.Fatalf("metrics_address = %q", cfg.Control.MetricsAddress)
	}
	_, err = ParseMN("m.toml", []byte(base+"metrics_address = \"localhost\"\n"))
	if err == nil || !strings.Contains(err.Error(), "m.toml:6: control.metrics_address") {
		t.Fatalf("bad metrics_address: %v", err)
	}
}
