package main

import (
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
			"[correspondent]\nenabled = true\n", 0},
		"neither role":                  {"[correspondent]\nenabled = false\n", 1},
		"correspondent without address": {"[correspondent]\nenabled = true\n", 1},
	} {
		path := filepath.Join(dir, "ha.toml")
		if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := run([]string{"-config", path, "-check-config"}); got != tc.want {
			t.Errorf("%s: exit %d, want %d", name, got, tc.want)
		}
	}
}
