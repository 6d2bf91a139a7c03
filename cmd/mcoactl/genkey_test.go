package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/pkg/config"
)

// The shape of genkey's output, with the key replaced.
const genkeyGolden = `# RFC 4285 MN-HA key, SPI 4242. Keep it secret: whoever has it can
# register care-of addresses for this home address. The key may also
# live in a file that only root reads, named instead of the hex
# (mnha_key = "/etc/mcoad/mnha.key", key = "/etc/mcoad/mn1.key").

# The mobile node, /etc/mcoad/mcoad.toml, in [mobile_node]:
mnha_spi = 4242
mnha_key = "KEY"

# The home agent, /etc/mcoad/mcoa-ha.toml:
[[home_agent.mn]]
home_address = "2001:db8:1000::100"
spi = 4242
key = "KEY"
`

var hexKey = regexp.MustCompile(`"[0-9a-f]{64}"`)

func TestGenkeyGolden(t *testing.T) {
	var out bytes.Buffer
	if err := cmdGenkey([]string{"-spi", "4242", "-home-address", "2001:db8:1000::100"}, &out); err != nil {
		t.Fatal(err)
	}
	keys := hexKey.FindAllString(out.String(), -1)
	if len(keys) != 2 || keys[0] != keys[1] {
		t.Fatalf("want the same 32-byte hex key twice, got %q in\n%s", keys, out.String())
	}
	if got := hexKey.ReplaceAllString(out.String(), `"KEY"`); got != genkeyGolden {
		t.Errorf("got\n%s\nwant\n%s", got, genkeyGolden)
	}
	// Each run makes a new key (crypto/rand).
	var again bytes.Buffer
	if err := cmdGenkey([]string{"-spi", "4242", "-home-address", "2001:db8:1000::100"}, &again); err != nil {
		t.Fatal(err)
	}
	if hexKey.FindString(again.String()) == keys[0] {
		t.Error("two runs printed the same key")
	}
}

// The printed lines are accepted by both daemons' configurations, with
// the same key and SPI.
func TestGenkeyParses(t *testing.T) {
	var out bytes.Buffer
	if err := genkey([]string{"-home-address", "2001:db8:1000::100"}, &out, bytes.NewReader(bytes.Repeat([]byte{0xa5}, 32))); err != nil {
		t.Fatal(err)
	}
	mnPart, haPart, ok := strings.Cut(out.String(), "# The home agent")
	if !ok {
		t.Fatalf("no home agent part in\n%s", out.String())
	}
	mn, err := config.ParseMN("mcoad.toml", []byte(`[mobile_node]
home_address = "2001:db8:1000::100"
home_agent = "2001:db8:1000::1"
home_prefix = "2001:db8:1000::/64"
`+mnPart))
	if err != nil {
		t.Fatalf("mobile node: %v", err)
	}
	ha, err := config.ParseHA("mcoa-ha.toml", []byte(`[home_agent]
address = "2001:db8:1000::1"
interface = "eth1"
home_prefix = "2001:db8:1000::/64"
#`+haPart))
	if err != nil {
		t.Fatalf("home agent: %v", err)
	}
	want := bytes.Repeat([]byte{0xa5}, 32)
	if mn.MobileNode.MNHASPI != 1000 || !bytes.Equal(mn.MobileNode.MNHAKey.Bytes(), want) {
		t.Errorf("mobile node: spi %d key %x", mn.MobileNode.MNHASPI, mn.MobileNode.MNHAKey.Bytes())
	}
	if len(ha.HomeAgent.MNs) != 1 || ha.HomeAgent.MNs[0].SPI != 1000 || !bytes.Equal(ha.HomeAgent.MNs[0].Key.Bytes(), want) ||
		ha.HomeAgent.MNs[0].HomeAddress.String() != "2001:db8:1000::100" || !ha.HomeAgent.RequireAuth {
		t.Errorf("home agent: %+v", ha.HomeAgent)
	}
}

func TestGenkeyErrors(t *testing.T) {
	for args, want := range map[string]string{
		"-spi 255":               "-spi \"255\": want an integer from 256",
		"-spi 4294967296":        "want an integer from 256 to 4294967295",
		"-spi x":                 "want an integer",
		"-home-address fe80::1":  "want a global unicast IPv6 address",
		"-home-address 10.0.0.1": "want a global unicast IPv6 address",
		"extra":                  `unexpected argument "extra"`,
		"-bogus":                 "flag provided but not defined",
	} {
		var out bytes.Buffer
		err := cmdGenkey(strings.Fields(args), &out)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
		if hexKey.MatchString(out.String()) {
			t.Errorf("%s: printed a key despite the error", args)
		}
	}
	// Without -home-address the entry has a placeholder the home agent
	// refuses, naming the key, rather than a working address.
	var out bytes.Buffer
	if err := cmdGenkey(nil, &out); err != nil {
		t.Fatal(err)
	}
	_, haPart, _ := strings.Cut(out.String(), "# The home agent")
	_, err := config.ParseHA("mcoa-ha.toml", []byte("[home_agent]\naddress = \"2001:db8:1000::1\"\ninterface = \"eth1\"\nhome_prefix = \"2001:db8:1000::/64\"\n#"+haPart))
	if err == nil || !strings.Contains(err.Error(), `home_agent.mn[0].home_address: "HOME_ADDRESS"`) {
		t.Errorf("placeholder: %v", err)
	}
	// -h prints the help, mentions openssl, and is not an error.
	out.Reset()
	if err := cmdGenkey([]string{"-h"}, &out); err != nil || !strings.Contains(out.String(), "openssl rand -hex 32") {
		t.Errorf("-h: %v\n%s", err, out.String())
	}
}
