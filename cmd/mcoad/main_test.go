package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireE2E skips the test (why), or fails it when MCOA_E2E=1.
func requireE2E(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("MCOA_E2E") == "1" {
		t.Fatalf("MCOA_E2E=1 but %s", why)
	}
	t.Skip(why)
}

func TestFlags(t *testing.T) {
	if code := run([]string{"-version"}); code != 0 {
		t.Errorf("-version: exit %d", code)
	}
	if code := run([]string{"-no-such-flag"}); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[mobile_node]\nhome_address = 7\n"), 0o644)
	if code := run([]string{"-check-config", bad}); code != 1 {
		t.Errorf("-check-config of a bad file: exit %d, want 1", code)
	}
	// The shipped file has its required keys commented out: one line
	// says what to fill in (pkg/config tests its text).
	if code := run([]string{"-check-config", "../../etc/mcoad.toml"}); code != 1 {
		t.Errorf("-check-config etc/mcoad.toml: exit %d, want 1 (fill in the required keys)", code)
	}
	filled := filepath.Join(t.TempDir(), "filled.toml")
	os.WriteFile(filled, []byte("[mobile_node]\nhome_address = \"2001:db8:aaaa::100\"\nhome_agent = \"2001:db8:aaaa::1\"\nhome_prefix = \"2001:db8:aaaa::/64\"\n"), 0o644)
	if code := run([]string{"-check-config", filled}); code != 0 {
		t.Errorf("-check-config of a filled-in file: exit %d, want 0", code)
	}
}

// -cleanup removes the nftables table a killed mcoad leaves, and succeeds
// when there is none; in a network namespace of its own.
func TestCleanup(t *testing.T) {
	if os.Geteuid() != 0 {
		requireE2E(t, "needs root for a network namespace")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			requireE2E(t, tool+" is not installed")
		}
	}
	bin := filepath.Join(t.TempDir(), "mcoad")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ns := fmt.Sprintf("mcoaT%d%04x-clean", os.Getpid(), rand.IntN(0x10000))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	inNS := func(args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := inNS("nft", "add table ip6 mcoad_mh; add table ip6 other; add chain ip6 mcoad_mh output { type filter hook output priority 0; }"); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	for i := range 2 { // the second time there is nothing to do
		if out, err := inNS(bin, "-cleanup"); err != nil {
			t.Fatalf("mcoad -cleanup (%d): %v: %s", i, err, out)
		}
		out, err := inNS("nft", "list tables")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "mcoad_mh") || !strings.Contains(out, "table ip6 other") {
			t.Fatalf("after mcoad -cleanup: %s", out)
		}
	}
}
