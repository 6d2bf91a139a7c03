package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every example under etc/examples is a valid configuration.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../etc/examples/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples (%v)", err)
	}
	for _, f := range files {
		cfg, err := parseMN(f, read(t, f), func(string) ([]byte, error) {
			return []byte("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"), nil
		})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !cfg.MobileRouter.Enabled && filepath.Base(f) == "vehicle.toml" {
			t.Errorf("%s: not a mobile router", f)
		}
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The example of mcoad.toml(5) is a valid configuration.
func TestManPageExample(t *testing.T) {
	page := string(read(t, "../../packaging/deb/man/mcoad.toml.5"))
	_, rest, ok := strings.Cut(page, ".SH EXAMPLE\n.nf\n")
	ex, _, ok2 := strings.Cut(rest, ".fi\n")
	if !ok || !ok2 {
		t.Fatal("no .SH EXAMPLE with a .nf/.fi block in mcoad.toml.5")
	}
	ex = strings.ReplaceAll(ex, `\-`, "-")
	if _, err := parseMN("mcoad.toml.5", []byte(ex), func(string) ([]byte, error) {
		return []byte("00112233445566778899aabbccddeeff\n"), nil
	}); err != nil {
		t.Errorf("the man page's example:\n%s\n%v", ex, err)
	}
}

// rfc5648 exists in pkg/proto (the codec) but the daemons do not follow
// its procedures yet: refused with a line saying so.
func TestProfileRFC5648NotYet(t *testing.T) {
	_, err := ParseMN("m.toml", []byte("[mobile_node]\nhome_address = \"2001:db8:aaaa::100\"\nhome_agent = \"2001:db8:aaaa::1\"\nhome_prefix = \"2001:db8:aaaa::/64\"\nprofile = \"rfc5648\"\n"))
	if err == nil || !strings.Contains(err.Error(), `wire profile "rfc5648" is not usable by the daemons yet`) {
		t.Errorf("profile rfc5648: %v", err)
	}
}
