package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// checkFuzzResult checks what must hold for any input: an error is an
// Errors of well-formed entries whose lines exist in the input, and a
// configuration without error satisfies the cross-key rules.
func checkFuzzResult(t *testing.T, data []byte, err error) {
	if err == nil {
		return
	}
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
	}
	// The TOML library may point one line past the last newline.
	maxLine := strings.Count(string(data), "\n") + 1
	for _, e := range es {
		if e.File != "fuzz.toml" || e.Msg == "" || e.Line < 0 || e.Line > maxLine+1 {
			t.Fatalf("bad error entry %+v (input has %d lines)", e, maxLine)
		}
	}
}

func fuzzSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
}

func FuzzParseMN(f *testing.F) {
	fuzzSeeds(f, "../../etc/mcoad.toml")
	f.Add([]byte(withHead(mnHead, `[[interface]]`, `match = "eth*"`, `bid = 3`, `[[policy]]`, `name = "v"`, `prefer = ["bid:3"]`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseMN("fuzz.toml", data, noRead)
		checkFuzzResult(t, data, err)
		if err != nil {
			if c != nil {
				t.Fatal("configuration returned with an error")
			}
			return
		}
		m := c.MobileNode
		if !m.HomePrefix.Contains(m.HomeAddress) || m.HomeAddress == m.HomeAgent ||
			m.Lifetime < MinLifetime || m.Lifetime > MaxLifetime || m.Lifetime%MinLifetime != 0 {
			t.Fatalf("invalid configuration accepted: %+v", m)
		}
		if _, err := m.WireProfile(); err != nil {
			t.Fatalf("accepted profile fails: %v", err)
		}
		for _, p := range c.Policies {
			if p.Name == "" || len(p.Prefer) == 0 || p.SrcPort.Lo > p.SrcPort.Hi || p.DstPort.Lo > p.DstPort.Hi {
				t.Fatalf("invalid policy accepted: %+v", p)
			}
		}
		if d := DiffMN(c, c); d != nil {
			t.Fatalf("DiffMN(c, c) = %v", d)
		}
	})
}

func FuzzParseHA(f *testing.F) {
	fuzzSeeds(f, "../../etc/mcoa-ha.toml")
	f.Add([]byte(lines(`[correspondent]`, `enabled = true`, `address = ["2001:db8:cccc::1"]`, `max_lifetime = 100`, `bid_option_type = 77`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseHA("fuzz.toml", data, noRead)
		checkFuzzResult(t, data, err)
		if err != nil {
			return
		}
		h, cn := c.HomeAgent, c.Correspondent
		if c.HomeAgentRole() && (!h.HomePrefix.Contains(h.Address) || len(h.Serve) == 0 || h.MaxLifetime%MinLifetime != 0) {
			t.Fatalf("invalid configuration accepted: %+v", h)
		}
		if !c.HomeAgentRole() && (!cn.Enabled || len(cn.Addresses) == 0) {
			t.Fatalf("configuration with no role accepted: %+v", c)
		}
		if cn.Enabled && len(cn.Addresses) == 0 || cn.MaxLifetime%MinLifetime != 0 || cn.MaxLifetime > MaxRRLifetime || cn.MaxLifetime <= 0 {
			t.Fatalf("invalid correspondent accepted: %+v", cn)
		}
		if _, err := c.WireProfile(); err != nil {
			t.Fatalf("accepted configuration has no wire profile: %v", err)
		}
		if d := DiffHA(c, c); d != nil {
			t.Fatalf("DiffHA(c, c) = %v", d)
		}
	})
}
