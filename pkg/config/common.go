package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

func defaultDataplane() Dataplane {
	return Dataplane{Backend: BackendAuto, Mark: DefaultMark, Mask: DefaultMask, TableBase: DefaultTableBase, BPFDir: DefaultBPFDir}
}

func (t *tbl) dataplane(d *Dataplane) {
	if s, ok := t.enum("backend", string(BackendAuto), string(BackendTUN), string(BackendKernel), string(BackendEBPF), string(BackendNone)); ok {
		d.Backend = Backend(s)
	}
	markOK, maskOK := true, true
	if t.has("mark") {
		var n int64
		n, markOK = t.integer("mark", 1, 0xffffffff)
		if markOK {
			d.Mark = uint32(n)
		}
	}
	if t.has("mask") {
		var n int64
		n, maskOK = t.integer("mask", 1, 0xffffffff)
		if maskOK {
			d.Mask = uint32(n)
		}
	}
	if markOK && maskOK && d.Mark&^d.Mask != 0 {
		k := "mark"
		if !t.has("mark") {
			k = "mask"
		}
		t.w.errf(t.at(k), "mark %#x has bits outside mask %#x", d.Mark, d.Mask)
	}
	// Table IDs are 32 bits; BIDs add up to 65535.
	if n, ok := t.integer("table_base", 256, 0xffffffff-65535); ok {
		d.TableBase = uint32(n)
	}
	if s, ok := t.str("bpf_dir"); ok && t.w.absPath(t.at("bpf_dir"), s) {
		d.BPFDir = s
	}
	t.done()
}

func (t *tbl) control(c *Control) {
	if s, ok := t.str("socket"); ok && t.w.absPath(t.at("socket"), s) {
		c.Socket = s
	}
	if s, ok := t.str("group"); ok {
		if strings.ContainsAny(s, ": \t\n/") {
			t.w.errf(t.at("group"), "%q is not a valid group name", s)
		} else {
			c.Group = s
		}
	}
	if s, ok := t.str("metrics_address"); ok {
		if _, err := netip.ParseAddrPort(s); err != nil {
			t.w.errf(t.at("metrics_address"), "%q is not an address and port like \"[::1]:9477\"", s)
		} else {
			c.MetricsAddress = s
		}
	}
	t.done()
}

func (t *tbl) log(l *Log) {
	if s, ok := t.enum("level", "debug", "info", "warn", "error"); ok {
		_ = l.Level.UnmarshalText([]byte(s))
	}
	if s, ok := t.enum("format", LogText, LogJSON); ok {
		l.Format = s
	}
	t.done()
}

// profile reads profile and bid_option_type and checks them against the
// wire profiles pkg/proto knows.
func (t *tbl) profile(name *string, typ *uint8) {
	if s, ok := t.str("profile"); ok {
		switch _, err := proto.ProfileByName(s, 0); {
		case err != nil || s == "":
			t.w.errf(t.at("profile"), "unknown wire profile %q (known: draft-00)", s)
		case s != proto.Draft00.Name:
			// pkg/proto encodes it; the daemons' procedures (binding
			// cache, Binding Update List) follow the draft only so far.
			t.w.errf(t.at("profile"), "wire profile %q is not usable by the daemons yet (only draft-00 is)", s)
		default:
			*name = s
		}
	}
	if n, ok := t.integer("bid_option_type", 1, 255); ok {
		if _, err := proto.ProfileByName(*name, uint8(n)); err != nil {
			t.w.errf(t.at("bid_option_type"), "%d collides with a standard mobility option type", n)
		} else {
			*typ = uint8(n)
		}
	}
}

// lifetime reads a lifetime and rounds it down to the 4-second unit of
// the wire.
func (t *tbl) lifetime(k string, dst *time.Duration) {
	if d, ok := t.seconds(k, MinLifetime, MaxLifetime); ok {
		*dst = d - d%MinLifetime
	}
}

// auth reads an RFC 4285 SPI and key pair (spiKey, keyKey name them).
func (t *tbl) auth(spiKey, keyKey string, spi *uint32, key *Secret) {
	spiOK, keyOK := false, false
	if n, ok := t.integer(spiKey, MinSPI, 0xffffffff); ok {
		*spi, spiOK = uint32(n), true
	}
	if s, ok := t.str(keyKey); ok {
		*key, keyOK = t.w.secret(t.at(keyKey), s)
	}
	switch {
	case t.has(spiKey) && !t.has(keyKey):
		t.w.errAt(t.at(spiKey), t.at(keyKey), "is required with %s", spiKey)
	case t.has(keyKey) && !t.has(spiKey):
		t.w.errAt(t.at(keyKey), t.at(spiKey), "is required with %s", keyKey)
	}
	if !spiOK || !keyOK {
		*spi, *key = 0, ""
	}
}

// secret parses a key written in hex, or read from a file when the value
// contains a slash (relative paths are relative to the configuration
// file's directory). The file holds the key in hex.
func (w *walker) secret(p, s string) (Secret, bool) {
	src := s
	if strings.ContainsRune(s, '/') {
		name := s
		if !strings.HasPrefix(name, "/") {
			name = w.dir + name
		}
		data, err := w.read(name)
		if err != nil {
			w.errf(p, "cannot read key file: %v", err)
			w.errs[len(w.errs)-1].Err = err
			return "", false
		}
		src = strings.TrimSpace(string(data))
	}
	hx := strings.TrimPrefix(strings.TrimPrefix(src, "0x"), "0X")
	b, err := hex.DecodeString(hx)
	if err != nil || len(hx) == 0 {
		if src != s {
			w.errf(p, "key file %q does not hold a key in hex", s)
		} else {
			w.errf(p, "is neither a hex key nor a file path (write a file name with a slash, e.g. \"./mnha.key\")")
		}
		return "", false
	}
	if len(b) < MinKeyLen || len(b) > MaxKeyLen {
		w.errf(p, "key is %d bytes; want %d to %d", len(b), MinKeyLen, MaxKeyLen)
		return "", false
	}
	return Secret(b), true
}

const maxKeyFile = 4096

// readKeyFile reads a key file: a regular file of at most 4 KiB that
// others may not read or write.
func readKeyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("%s is accessible by others (mode %v); chmod o-rwx it", name, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, errors.New(name + " is too large for a key file")
	}
	return data, nil
}

func defaultLog() Log { return Log{Level: slog.LevelInfo, Format: LogText} }
