package config

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The shipped files hold no working addresses: each daemon refuses them
// with one line naming the keys to fill in. Filled in (with the
// documentation addresses of their comments), they hold the defaults.
func TestEtcFiles(t *testing.T) {
	read := func(name string) []byte {
		t.Helper()
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	oneError := func(file string, err error, want string) {
		t.Helper()
		var es Errors
		if !errors.As(err, &es) || len(es) != 1 || es[0].Error() != want {
			t.Errorf("%s: got\n%v\nwant the one line\n%s", file, err, want)
		}
	}

	mnText := read("../../etc/mcoad.toml")
	_, err := ParseMN("/etc/mcoad/mcoad.toml", mnText)
	oneError("etc/mcoad.toml", err, "/etc/mcoad/mcoad.toml:11: mobile_node: fill in home_address, home_agent, home_prefix (see the comments in the file)")
	mn, err := ParseMN("mcoad.toml", fillIn(t, mnText, "home_address", "home_agent", "home_prefix"))
	if err != nil {
		t.Fatalf("etc/mcoad.toml filled in: %v", err)
	}
	want := DefaultMN()
	want.MobileNode.HomeAddress = netip.MustParseAddr("2001:db8:1000::100")
	want.MobileNode.HomeAgent = netip.MustParseAddr("2001:db8:1000::1")
	want.MobileNode.HomePrefix = netip.MustParsePrefix("2001:db8:1000::/64")
	want.Interfaces = []Interface{
		{Match: "eth*", Priority: 30, MeteredPriority: 30},
		{Match: "wlan*", Priority: 20, MeteredPriority: 20},
		{Match: "wwan*", Priority: 10, MeteredPriority: 1},
	}
	if d := DiffMN(want, mn); d != nil {
		t.Errorf("etc/mcoad.toml differs from defaults in %v:\n%+v", d, mn)
	}

	haText := read("../../etc/mcoa-ha.toml")
	_, err = ParseHA("/etc/mcoad/mcoa-ha.toml", haText)
	oneError("etc/mcoa-ha.toml", err, "/etc/mcoad/mcoa-ha.toml:17: home_agent: fill in address, interface, home_prefix (see the comments in the file)")
	filled := fillIn(t, haText, "address", "interface", "home_prefix")
	// The next thing a new home agent is told: it has no mobile node's key.
	_, err = ParseHA("/etc/mcoad/mcoa-ha.toml", filled)
	oneError("etc/mcoa-ha.toml without keys", err, "/etc/mcoad/mcoa-ha.toml:17: home_agent: no [[home_agent.mn]] has an spi and key, "+
		"so every binding update would be refused: add one (`mcoactl genkey` prints it) or set allow_unauthenticated = true")
	ha, err := ParseHA("mcoa-ha.toml", append(filled, "\n[[home_agent.mn]]\nhome_address = \"2001:db8:1000::100\"\nspi = 300\nkey = \""+testKeyHex+"\"\n"...))
	if err != nil {
		t.Fatalf("etc/mcoa-ha.toml filled in: %v", err)
	}
	wantHA := DefaultHA()
	h := &wantHA.HomeAgent
	h.Address = netip.MustParseAddr("2001:db8:1000::1")
	h.Interface = "eth1"
	h.HomePrefix = netip.MustParsePrefix("2001:db8:1000::/64")
	h.Serve = []netip.Prefix{h.HomePrefix}
	h.MNs = []HAMobileNode{{HomeAddress: netip.MustParseAddr("2001:db8:1000::100"), SPI: 300, Key: Secret(mustHex(t, testKeyHex))}}
	if d := DiffHA(wantHA, ha); d != nil || !ha.HomeAgent.RequireAuth {
		t.Errorf("etc/mcoa-ha.toml differs from defaults in %v:\n%+v", d, ha)
	}
}

// fillIn uncomments the first "# key = value" line of each key.
func fillIn(t *testing.T, data []byte, keys ...string) []byte {
	t.Helper()
	ls := strings.Split(string(data), "\n")
	for _, k := range keys {
		re := regexp.MustCompile(`^# ` + k + ` *= `)
		i := slices.IndexFunc(ls, re.MatchString)
		if i < 0 {
			t.Fatalf("no commented %s", k)
		}
		ls[i] = ls[i][2:]
	}
	return []byte(strings.Join(ls, "\n"))
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The commented-out examples in the shipped files are valid too once
// uncommented (with a key file to point at).
func TestEtcFilesUncommented(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "mnha.key")
	if err := os.WriteFile(keyFile, []byte(testKeyHex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	uncomment := func(name string) []byte {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range strings.Split(string(data), "\n") {
			// "# key = value" and "# [section]" lines are examples.
			if example.MatchString(l) {
				l = strings.ReplaceAll(l[2:], "/etc/mcoad/mnha.key", keyFile)
			}
			out = append(out, l)
		}
		return []byte(strings.Join(out, "\n"))
	}
	mn, err := ParseMN("mcoad.toml", uncomment("../../etc/mcoad.toml"))
	if err != nil {
		t.Fatalf("uncommented etc/mcoad.toml: %v", err)
	}
	if mn.MobileNode.MNHASPI != 1000 || len(mn.Correspondents) != 1 || len(mn.Policies) != 1 || len(mn.MobileRouter.Prefixes) != 1 {
		t.Errorf("uncommented examples not all read: %+v", mn)
	}
	ha, err := ParseHA("mcoa-ha.toml", uncomment("../../etc/mcoa-ha.toml"))
	if err != nil {
		t.Fatalf("uncommented etc/mcoa-ha.toml: %v", err)
	}
	if len(ha.HomeAgent.MNs) != 1 || ha.HomeAgent.MNs[0].Key.Bytes()[15] != 0xff || len(ha.Correspondent.Addresses) != 1 {
		t.Errorf("uncommented examples not all read: %+v", ha)
	}
}

var example = regexp.MustCompile(`^# ([a-z_]+ *= |\[)`)

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask
			t.Fatal(err)
		}
	}
	write("good.key", "  "+strings.ToUpper(testKeyHex)+"\n", 0o600)
	write("open.key", testKeyHex, 0o644)
	write("text.key", "not hex at all", 0o640)
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("keys/mn1", testKeyHex+testKeyHex, 0o400)

	load := func(key string) (*MN, error) {
		cfg := filepath.Join(dir, "mcoad.toml")
		write("mcoad.toml", withHead(mnHead, `mnha_spi = 4096`, `mnha_key = "`+key+`"`), 0o644)
		return LoadMN(cfg)
	}
	for _, key := range []string{filepath.Join(dir, "good.key"), "./good.key"} {
		c, err := load(key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got := c.MobileNode.MNHAKey.Bytes(); len(got) != 16 || got[1] != 0x11 || got[15] != 0xff {
			t.Errorf("%s: key = %x", key, got)
		}
	}
	c, err := load("keys/mn1")
	if err != nil || len(c.MobileNode.MNHAKey) != 32 {
		t.Errorf("relative path in a subdirectory: %v", err)
	}

	for key, want := range map[string]string{
		"./open.key":    "accessible by others",
		"./text.key":    `key file "./text.key" does not hold a key in hex`,
		"./missing.key": "no such file",
		"/dev/null":     "not a regular file",
		"./keys":        "not a regular file",
	} {
		_, err := load(key)
		var es Errors
		if !errors.As(err, &es) || len(es) != 1 || es[0].Line != 6 || es[0].Key != "mobile_node.mnha_key" ||
			!strings.Contains(es[0].Msg, want) {
			t.Errorf("%s: got %v, want line 6 mobile_node.mnha_key %q", key, err, want)
		}
	}
	if _, err := load("./missing.key"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing key file does not unwrap to fs.ErrNotExist: %v", err)
	}
	if _, err := LoadMN(filepath.Join(dir, "nope.toml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing configuration file: %v", err)
	}
}

// Keys never appear in printed, logged or JSON-encoded configurations.
func TestSecretRedacted(t *testing.T) {
	c := labMN()
	c.MobileNode.MNHASPI = 300
	c.MobileNode.MNHAKey = Secret("0123456789abcdefSECRET")
	h := labHA()
	h.HomeAgent.MNs = []HAMobileNode{{SPI: 300, Key: c.MobileNode.MNHAKey}}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("cfg", "key", c.MobileNode.MNHAKey)
	js, err := json.Marshal(struct {
		MN *MN
		HA *HA
	}{c, h})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		fmt.Sprintf("%v %+v %#v %s", c, c, c, c.MobileNode.MNHAKey),
		fmt.Sprintf("%v %+v %#v", h, h, h),
		logged.String(),
		string(js),
	} {
		if strings.Contains(s, "SECRET") || strings.Contains(s, "0123456789") {
			t.Errorf("key leaked: %s", s)
		}
		if !strings.Contains(s, "22-byte key") {
			t.Errorf("no redacted placeholder in %s", s)
		}
	}
}

func TestErrorsUnwrap(t *testing.T) {
	_, err := ParseMN("x.toml", []byte(withHead(mnHead, `lifetime = 1`, `bid_mode = "x"`)))
	var e *Error
	if !errors.As(err, &e) || e.Line != 5 {
		t.Fatalf("errors.As(*Error) = %v", e)
	}
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("errors.As(Errors) = %v", es)
	}
	if len(es.Unwrap()) != 2 {
		t.Errorf("Unwrap gives %d errors", len(es.Unwrap()))
	}
}

func TestFileTooLarge(t *testing.T) {
	data := []byte(withHead(mnHead) + strings.Repeat("# padding\n", MaxFileSize/10))
	_, err := ParseMN("big.toml", data)
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 || !strings.Contains(es[0].Msg, "at most") {
		t.Errorf("got %v", err)
	}
}

func TestPolicyTypes(t *testing.T) {
	if ProtoTCP.Number() != 6 || ProtoUDP.Number() != 17 || ProtoICMPv6.Number() != 58 || ProtoAny.Number() != 0 {
		t.Error("protocol numbers")
	}
	r := PortRange{5060, 5061}
	if !r.Contains(5060) || !r.Contains(5061) || r.Contains(5062) || r.Contains(5059) || !(PortRange{}).Contains(1) {
		t.Error("PortRange.Contains")
	}
	if r.String() != "5060-5061" || (PortRange{22, 22}).String() != "22" || (PortRange{}).String() != "any" {
		t.Error("PortRange.String")
	}
	if (Preference{BID: 3}).String() != "bid:3" || (Preference{Interface: "eth*"}).String() != "eth*" {
		t.Error("Preference.String")
	}
	if p, err := labMN().MobileNode.WireProfile(); err != nil || p.Name != "draft-00" || p.BIDOptionType != 35 {
		t.Errorf("WireProfile = %v, %v", p, err)
	}
	if _, err := labHA().HomeAgent.WireProfile(); err != nil {
		t.Errorf("HA WireProfile: %v", err)
	}
	_ = netip.Addr{}
}
