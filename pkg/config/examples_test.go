package config

import (
	"os"
	"path/filepath"
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
