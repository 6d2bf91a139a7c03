package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// golden compares got with testdata/NAME (or writes it with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s\nwant:\n%s", path, got, want)
	}
}

// helpLines are every command's help, each spelled the three ways.
func helpCases() (names []string, lines [][][]string) {
	add := func(name string, words ...string) {
		names = append(names, name)
		lines = append(lines, [][]string{
			append(append([]string{}, words...), "--help"),
			append([]string{"-h"}, words...),
			append([]string{"help"}, words...),
		})
	}
	for _, c := range commands {
		if len(c.subs) == 0 {
			add(c.name, c.name)
			continue
		}
		add(c.name, c.name)
		for _, s := range c.subs {
			add(c.name+"-"+s.name, c.name, s.name)
		}
	}
	return names, lines
}

// TestHelp: every command's help, golden; -h, --help and `help CMD` say the
// same, on stdout with exit 0, and never reach the daemon (whose socket
// here does not exist: a call would fail with exit 1).
func TestHelp(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	names, lines := helpCases()
	for i, name := range names {
		var first string
		for j, args := range lines[i] {
			args = append([]string{"-socket", sock}, args...)
			code, out, errs := mcoactl(args...)
			if code != 0 || errs != "" {
				t.Errorf("%v: exit %d, stderr %q", args, code, errs)
			}
			if j == 0 {
				first = out
				golden(t, "help/"+name+".txt", out)
			} else if out != first {
				t.Errorf("%v differs from %v:\n%s", args, lines[i][0], out)
			}
		}
	}
	code, out, _ := mcoactl("--help")
	if code != 0 {
		t.Errorf("--help: exit %d", code)
	}
	golden(t, "help/overview.txt", out)
	for _, args := range [][]string{{"help"}, {"-h"}, {"help", "--json"}} {
		if code, o, _ := mcoactl(args...); code != 0 || o != out {
			t.Errorf("%v: exit %d, not the overview:\n%s", args, code, o)
		}
	}
}

// TestHelpNeverCallsDaemon: the line of issue 14, `policy delete --help`,
// and help among other options and arguments, with a daemon that records
// every call.
func TestHelpNeverCallsDaemon(t *testing.T) {
	s := startMN(t)
	for _, line := range []string{
		"policy delete --help",
		"policy delete -h",
		"policy delete voice --help",
		"deregister --all --help",
		"--json reload -h",
		"priority 1 2 --help",
		"register -help",
		"policy add x -prefer eth* --help",
		"hint up --help",
		"policy --help",
		"help reload",
	} {
		code, out, errs := mcoactl(append([]string{"-socket", s.sock}, strings.Fields(line)...)...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: mcoactl ") {
			t.Errorf("%s: exit %d, stderr %q, stdout %q", line, code, errs, out)
		}
	}
	if len(s.mn.calls) != 0 {
		t.Errorf("help reached the daemon: %v", s.mn.calls)
	}
	// After "--", -h is an argument: policy delete of a name "-h"
	// reaches the daemon (which refuses or deletes it).
	code, _, _ := mcoactl("-socket", s.sock, "policy", "delete", "--", "-h")
	if code != 0 || s.mn.last() != "DeletePolicy -h" {
		t.Errorf("policy delete -- -h: exit %d, backend %q", code, s.mn.last())
	}
}

// TestFlagPositions: global options before the command, after it, between
// a command and its subcommand and among its arguments; a command's own
// options anywhere after it.
func TestFlagPositions(t *testing.T) {
	s := startMN(t)
	for _, args := range [][]string{
		{"-socket", s.sock, "--json", "bindings"},
		{"-socket", s.sock, "bindings", "--json"},
		{"bindings", "-socket", s.sock, "--json"},
		{"bindings", "--json", "-socket=" + s.sock},
		{"--json", "bindings", "--socket", s.sock},
		{"-json=true", "-socket", s.sock, "bindings"},
	} {
		code, out, errs := mcoactl(args...)
		if code != 0 || errs != "" || !json.Valid([]byte(out)) || !strings.HasPrefix(out, "[") {
			t.Errorf("%v: exit %d, stderr %q, stdout %q", args, code, errs, out)
		}
	}
	for _, c := range []struct{ line, call string }{
		{"policy --json list", ""},
		{"policy list --json", ""},
		{"deregister 2 --all=false", "Deregister [2] false"},
		{"deregister --all --json", "Deregister [] true"},
		{"--json deregister 1 3", "Deregister [1 3] false"},
		{"policy add -prefer eth* voice -protocol udp", "AddPolicy {Name:voice Protocol:udp SrcPrefix: SrcPort: DstPort: DstPrefix: User: Cgroup: Prefer:[eth*]}"},
		{"policy add voice --prefer=wlan* --src-prefix 2001:db8:bbbb::/64", "AddPolicy {Name:voice Protocol: SrcPrefix:2001:db8:bbbb::/64 SrcPort: DstPort: DstPrefix: User: Cgroup: Prefer:[wlan*]}"},
		{"policy add -prefer eth* -- -odd", "AddPolicy {Name:-odd Protocol: SrcPrefix: SrcPort: DstPort: DstPrefix: User: Cgroup: Prefer:[eth*]}"},
		{"policies rm voice --json", "DeletePolicy voice"},
	} {
		code, out, errs := mcoactl(append([]string{"-socket", s.sock}, strings.Fields(c.line)...)...)
		if code != 0 || errs != "" {
			t.Errorf("%s: exit %d, stderr %q, stdout %q", c.line, code, errs, out)
		}
		if strings.Contains(c.line, "json") && !json.Valid([]byte(out)) {
			t.Errorf("%s: not JSON: %q", c.line, out)
		}
		if c.call != "" && s.mn.last() != c.call {
			t.Errorf("%s: backend got %q, want %q", c.line, s.mn.last(), c.call)
		}
	}
}

// TestVersion: --version and `version` need no daemon.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}, {"-version"}, {"status", "--version"}} {
		code, out, errs := mcoactl(append(args, "-socket", "/nonexistent/x.sock")...)
		if code != 0 || errs != "" || out != "mcoactl "+versionString()+"\n" {
			t.Errorf("%v: exit %d %q %q", args, code, out, errs)
		}
	}
	code, out, _ := mcoactl("--json", "version")
	var v struct{ Name, Version string }
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Name != "mcoactl" || v.Version != versionString() {
		t.Errorf("--json version: %d %q", code, out)
	}
	old := version
	version = "1.2.3"
	defer func() { version = old }()
	if _, out, _ := mcoactl("--version"); out != "mcoactl 1.2.3\n" {
		t.Errorf("with -X main.version=1.2.3: %q", out)
	}
	if code, _, errs := mcoactl("version", "x"); code != 2 || !strings.Contains(errs, "version takes no arguments") {
		t.Errorf("version x: %d %q", code, errs)
	}
}

// TestJSONErrors: under --json every error is one JSON object on stderr,
// with the exit code and, when the daemon answered, its HTTP status.
func TestJSONErrors(t *testing.T) {
	s := startMN(t)
	missing := filepath.Join(t.TempDir(), "mcoad.sock")
	for _, c := range []struct {
		args   []string
		exit   int
		status int
		msg    string
	}{
		{[]string{"--json", "-socket", missing, "status"}, 1, 0, "mcoad is not running (no socket at " + missing + ")"},
		{[]string{"bindings", "--json", "-socket", missing}, 1, 0, "mcoad is not running"},
		{[]string{"--json", "frobnicate"}, 2, 0, `unknown command "frobnicate"`},
		{[]string{"--json", "bindings", "--nosuch"}, 2, 0, "unknown option --nosuch"},
		{[]string{"--nosuch", "--json"}, 2, 0, "unknown option --nosuch"},
		{[]string{"--json"}, 2, 0, "no command"},
		{[]string{"-socket", s.sock, "policy", "add", "bad name!", "-prefer", "x", "--json"}, 1, 400, `policy name "bad name!"`},
		{[]string{"-socket", s.sock, "priority", "x", "1", "--json"}, 2, 0, `"x" is not a BID`},
	} {
		code, out, errs := mcoactl(c.args...)
		var je struct {
			Error  string
			Status int
			Exit   int
		}
		if err := json.Unmarshal([]byte(errs), &je); err != nil || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: stderr is not one JSON line: %q (%v)", c.args, errs, err)
			continue
		}
		if code != c.exit || je.Exit != c.exit || je.Status != c.status || !strings.Contains(je.Error, c.msg) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %+v; want exit %d status %d error containing %q", c.args, code, out, je, c.exit, c.status, c.msg)
		}
	}
}
