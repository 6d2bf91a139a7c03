package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"

	"github.com/mcoad/mcoad/pkg/config"
)

// genkeyLen is the key length genkey makes: 32 bytes, more than
// HMAC-SHA1's block needs for full strength (RFC 4285's authenticator)
// and what `openssl rand -hex 32` makes.
const genkeyLen = 32

const genkeyUsage = `usage: mcoactl genkey [-spi N] [-home-address ADDR]

Prints a new random RFC 4285 MN-HA key (32 bytes, hex) with the lines that
use it: mnha_spi and mnha_key for the mobile node's [mobile_node], and the
[[home_agent.mn]] entry for the home agent. It talks to no daemon.
The same key, made otherwise: openssl rand -hex 32

`

// cmdGenkey is `mcoactl genkey`.
func cmdGenkey(args []string, out io.Writer) error {
	return genkey(args, out, rand.Reader)
}

// genkey reads the key from random (crypto/rand; tests fix it).
func genkey(args []string, out io.Writer, random io.Reader) error {
	fs := flag.NewFlagSet("genkey", flag.ContinueOnError)
	fs.SetOutput(out)
	spi := fs.String("spi", "1000", "security parameter index, "+strconv.Itoa(config.MinSPI)+"..4294967295")
	hoaFlag := fs.String("home-address", "", "the mobile node's home address (else a placeholder to fill in)")
	fs.Usage = func() {
		fmt.Fprint(out, genkeyUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("genkey: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("genkey: unexpected argument %q (options are -spi and -home-address)", fs.Arg(0))
	}
	n, err := strconv.ParseUint(*spi, 10, 64)
	if err != nil || n < config.MinSPI || n > math.MaxUint32 {
		return fmt.Errorf("genkey: -spi %q: want an integer from %d to 4294967295 (RFC 4285 reserves 0 to 255)", *spi, config.MinSPI)
	}
	hoa := `"HOME_ADDRESS"   # fill in: the mobile node's home_address`
	if *hoaFlag != "" {
		a, err := netip.ParseAddr(*hoaFlag)
		if err != nil || !a.Is6() || a.Is4In6() || !a.IsGlobalUnicast() || a.Zone() != "" {
			return fmt.Errorf("genkey: -home-address %q: want a global unicast IPv6 address", *hoaFlag)
		}
		hoa = strconv.Quote(a.String())
	}
	key := make([]byte, genkeyLen)
	if _, err := io.ReadFull(random, key); err != nil {
		return fmt.Errorf("genkey: random: %w", err)
	}
	k := hex.EncodeToString(key)
	_, err = fmt.Fprintf(out, `# RFC 4285 MN-HA key, SPI %[1]d. Keep it secret: whoever has it can
# register care-of addresses for this home address. The key may also
# live in a file that only root reads, named instead of the hex
# (mnha_key = "/etc/mcoad/mnha.key", key = "/etc/mcoad/mn1.key").

# The mobile node, /etc/mcoad/mcoad.toml, in [mobile_node]:
mnha_spi = %[1]d
mnha_key = "%[2]s"

# The home agent, /etc/mcoad/mcoa-ha.toml:
[[home_agent.mn]]
home_address = %[3]s
spi = %[1]d
key = "%[2]s"
`, n, k, hoa)
	return err
}

// haAuth is how `mcoactl status` shows mcoa-ha's Status.Auth.
var haAuth = map[string]string{
	"required": "required (RFC 4285 MN-HA)",
	"off":      "OFF: binding updates for home addresses without a key are accepted unauthenticated (allow_unauthenticated)",
}
