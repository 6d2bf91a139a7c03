package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The shell completions of the package (packaging/deb/root): each parses
// in its shell and completes commands, subcommands and options, with
// options after the command. A shell that is not installed is skipped
// (scripts/deps.sh installs bash-completion, zsh and fish).

const compRoot = "../../packaging/deb/root/usr/share"

var compCases = []struct{ line, want string }{
	{"mcoactl hi", "hint"},
	{"mcoactl policy a", "add"},
	{"mcoactl deregister --a", "--all"},
	{"mcoactl bindings --js", "--json"},
	{"mcoactl -socket /x/y.sock hint c", "connectivity"},
	{"mcoactl policy add x -protocol u", "udp"},
	{"mcoactl policy add x -src-pre", "-src-prefix"},
	{"mcoactl gen", "genkey"},
}

func shell(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed", name)
	}
	return p
}

func TestBashCompletion(t *testing.T) {
	bash := shell(t, "bash")
	file := filepath.Join(compRoot, "bash-completion/completions/mcoactl")
	if out, err := exec.Command(bash, "-n", file).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	const lib = "/usr/share/bash-completion/bash_completion"
	if !fileExists(lib) {
		t.Skip("bash-completion is not installed")
	}
	for _, c := range compCases {
		words := strings.Fields(c.line)
		args := append([]string{"-c", `source "$1"; source "$2"; shift 2
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
_mcoactl; echo "${COMPREPLY[*]}"`, "_", lib, file}, words...)
		out, err := exec.Command(bash, args...).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != c.want {
			t.Errorf("bash: %q completes to %q (%v), want %q", c.line, got, err, c.want)
		}
	}
}

func TestFishCompletion(t *testing.T) {
	fish := shell(t, "fish")
	file := filepath.Join(compRoot, "fish/vendor_completions.d/mcoactl.fish")
	if out, err := exec.Command(fish, "-n", file).CombinedOutput(); err != nil {
		t.Fatalf("fish -n: %v\n%s", err, out)
	}
	for _, c := range compCases {
		out, err := exec.Command(fish, "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, file, c.line).Output()
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			got = append(got, strings.SplitN(l, "\t", 2)[0])
		}
		if err != nil || strings.Join(got, " ") != c.want {
			t.Errorf("fish: %q completes to %q (%v), want %q", c.line, got, err, c.want)
		}
	}
}

func TestZshCompletion(t *testing.T) {
	zsh := shell(t, "zsh")
	file := filepath.Join(compRoot, "zsh/vendor-completions/_mcoactl")
	if out, err := exec.Command(zsh, "-n", file).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	// Loaded by compinit as zsh loads it (autoload from fpath) without a
	// complaint.
	out, err := exec.Command(zsh, "-f", "-c", `fpath=($1 $fpath); autoload -Uz compinit; compinit -u -D; autoload -Uz +X _mcoactl && echo loaded`,
		"_", filepath.Dir(file)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "loaded" {
		t.Errorf("zsh: %v\n%s", err, out)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
