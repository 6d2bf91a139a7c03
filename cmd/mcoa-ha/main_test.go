package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// -check-config takes a correspondent node alone and refuses a file with
// neither role.
func TestCheckConfigRoles(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		text string
		want int
	}{
		"correspondent alone": {"[correspondent]\nenabled = true\naddress = \"2001:db8:cccc::1\"\n", 0},
		"both roles": {"[home_agent]\naddress = \"2001:db8:aaaa::1\"\ninterface = \"home0\"\nhome_prefix = \"2001:db8:aaaa::/64\"\n" +
			"allow_unauthenticated = true\n[correspondent]\nenabled = true\n", 0},
		"home agent without keys":       {"[home_agent]\naddress = \"2001:db8:aaaa::1\"\ninterface = \"home0\"\nhome_prefix = \"2001:db8:aaaa::/64\"\n", 1},
		"neither role":                  {"[correspondent]\nenabled = false\n", 1},
		"correspondent without address": {"[correspondent]\nenabled = true\n", 1},
	} {
		path := filepath.Join(dir, "ha.toml")
		if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := run([]string{"-check-config", path}); got != tc.want {
			t.Errorf("%s: exit %d, want %d", name, got, tc.want)
		}
	}
}

// The shipped file is refused with one line on stderr (what `systemctl
// status` shows) naming the keys to fill in, and exit status 1.
func TestShippedConfigRefused(t *testing.T) {
	var stderr bytes.Buffer
	if got := runWith([]string{"-check-config", "../../etc/mcoa-ha.toml"}, &stderr); got != 1 {
		t.Errorf("exit %d, want 1", got)
	}
	want := "mcoa-ha: ../../etc/mcoa-ha.toml:17: home_agent: fill in address, interface, home_prefix (see the comments in the file)\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%s\nwant the one line\n%s", stderr.String(), want)
	}
}
