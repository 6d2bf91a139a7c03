package config

import (
	"fmt"
	"math"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// readFunc reads a referenced file (a key file); tests and the fuzz target
// replace it.
type readFunc func(name string) ([]byte, error)

// walker turns the generic TOML tree into typed values, collecting every
// error with its line instead of stopping at the first.
type walker struct {
	file  string
	dir   string // directory of file, for relative key file paths
	lines lineIndex
	errs  Errors
	read  readFunc
}

// decode parses data and returns the root table, or the syntax error.
func decode(name string, data []byte, read readFunc) (root *tbl, w *walker, err error) {
	var m map[string]any
	defer func() {
		// The TOML library is fuzzed upstream; a panic in it must still
		// become a configuration error, not a crashed daemon.
		if r := recover(); r != nil {
			root, w = nil, nil
			err = Errors{{File: name, Msg: fmt.Sprintf("cannot parse: %v", r)}}
		}
	}()
	if len(data) > MaxFileSize {
		return nil, nil, Errors{{File: name, Msg: fmt.Sprintf("is %d bytes; a configuration file is at most %d", len(data), MaxFileSize)}}
	}
	if _, err := toml.Decode(string(data), &m); err != nil {
		return nil, nil, Errors{syntaxError(name, err)}
	}
	w = &walker{file: name, dir: dirOf(name), lines: buildIndex(string(data)), read: read}
	return w.table("", m), w, nil
}

func dirOf(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i+1]
	}
	return ""
}

func syntaxError(name string, err error) *Error {
	e := &Error{File: name, Msg: err.Error(), Err: err}
	if pe, ok := err.(toml.ParseError); ok {
		e.Line = pe.Position.Line
		e.Key = pe.LastKey
		e.Msg = pe.Message
	}
	return e
}

func (w *walker) errf(p string, format string, args ...any) {
	w.errs = append(w.errs, &Error{File: w.file, Line: w.lines.line(p), Key: displayKey(p), Msg: fmt.Sprintf(format, args...)})
}

// errAt reports a problem with key p at the line of another key (a
// missing key that another one requires).
func (w *walker) errAt(linePath, p string, format string, args ...any) {
	w.errs = append(w.errs, &Error{File: w.file, Line: w.lines.line(linePath), Key: displayKey(p), Msg: fmt.Sprintf(format, args...)})
}

func (w *walker) result() error {
	if len(w.errs) == 0 {
		return nil
	}
	w.errs.sort()
	return w.errs
}

// tbl is one TOML table being decoded. m is nil when the table is absent.
type tbl struct {
	w    *walker
	path string
	m    map[string]any
	used map[string]bool
}

func (w *walker) table(p string, m map[string]any) *tbl {
	return &tbl{w: w, path: p, m: m, used: map[string]bool{}}
}

func (t *tbl) at(k string) string { return joinKey(t.path, k) }

func (t *tbl) has(k string) bool {
	_, ok := t.m[k]
	return ok
}

func (t *tbl) get(k string) (any, bool) {
	t.used[k] = true
	v, ok := t.m[k]
	return v, ok
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []map[string]any, []any:
		return "an array"
	}
	return "a date/time"
}

func (w *walker) typeErr(p, want string, v any) {
	w.errf(p, "must be %s, not %s", want, tomlType(v))
}

// done reports the keys of t that no getter asked for.
func (t *tbl) done() {
	var unknown []string
	for k := range t.m {
		if !t.used[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	known := make([]string, 0, len(t.used))
	for k := range t.used {
		known = append(known, k)
	}
	slices.Sort(known)
	for _, k := range unknown {
		what := "key"
		switch t.m[k].(type) {
		case map[string]any, []map[string]any:
			what = "section"
		}
		if s := suggest(k, known); s != "" {
			t.w.errf(t.at(k), "unknown %s (did you mean %s?)", what, s)
		} else {
			t.w.errf(t.at(k), "unknown %s", what)
		}
	}
}

// suggest returns the known key closest to k if it is a plausible typo.
func suggest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// sub returns the table at k (an absent table decodes as empty).
func (t *tbl) sub(k string) *tbl {
	v, ok := t.get(k)
	if !ok {
		return t.w.table(t.at(k), nil)
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		t.w.typeErr(t.at(k), "a table", v)
		return t.w.table(t.at(k), nil)
	}
	return t.w.table(t.at(k), m)
}

// list returns the elements of the array of tables at k, written either as
// [[k]] sections or as an inline array of tables.
func (t *tbl) list(k string) []*tbl {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	var out []*tbl
	switch v := v.(type) {
	case []map[string]any:
		for i, m := range v {
			out = append(out, t.w.table(indexKey(t.at(k), i), m))
		}
	case []any:
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				t.w.typeErr(indexKey(t.at(k), i), "a table", e)
				continue
			}
			out = append(out, t.w.table(indexKey(t.at(k), i), m))
		}
	default:
		t.w.errf(t.at(k), "must be an array of tables ([[%s]]), not %s", displayKey(k), tomlType(v))
	}
	return out
}

func (t *tbl) str(k string) (string, bool) {
	v, ok := t.get(k)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		t.w.typeErr(t.at(k), "a string", v)
	}
	return s, ok
}

func (t *tbl) boolean(k string, dst *bool) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	b, ok := v.(bool)
	if !ok {
		t.w.typeErr(t.at(k), "true or false", v)
		return
	}
	*dst = b
}

// integer returns the integer at k if it lies in [lo, hi].
func (t *tbl) integer(k string, lo, hi int64) (int64, bool) {
	v, ok := t.get(k)
	if !ok {
		return 0, false
	}
	n, ok := v.(int64)
	if !ok {
		t.w.typeErr(t.at(k), "an integer", v)
		return 0, false
	}
	if n < lo || n > hi {
		t.w.errf(t.at(k), "%d is out of range %d..%d", n, lo, hi)
		return 0, false
	}
	return n, true
}

// strs returns the strings of the array at k with the key path of each;
// elements of another type are reported and left out.
func (t *tbl) strs(k string) (vals, paths []string, ok bool) {
	v, ok := t.get(k)
	if !ok {
		return nil, nil, false
	}
	a, ok := v.([]any)
	if !ok {
		t.w.typeErr(t.at(k), "an array of strings", v)
		return nil, nil, false
	}
	vals = make([]string, 0, len(a))
	paths = make([]string, 0, len(a))
	for i, e := range a {
		p := indexKey(t.at(k), i)
		s, ok := e.(string)
		if !ok {
			t.w.typeErr(p, "a string", e)
			continue
		}
		vals = append(vals, s)
		paths = append(paths, p)
	}
	return vals, paths, true
}

// enum returns the string at k if it is one of allowed.
func (t *tbl) enum(k string, allowed ...string) (string, bool) {
	s, ok := t.str(k)
	if !ok {
		return "", false
	}
	if !slices.Contains(allowed, s) {
		q := make([]string, len(allowed))
		for i, a := range allowed {
			q[i] = strconv.Quote(a)
		}
		t.w.errf(t.at(k), "%q is not one of %s", s, strings.Join(q, ", "))
		return "", false
	}
	return s, true
}

// seconds reads a duration written as an integer number of seconds or as
// a Go duration string ("7m"), and checks it against [lo, hi].
func (t *tbl) seconds(k string, lo, hi time.Duration) (time.Duration, bool) {
	v, ok := t.get(k)
	if !ok {
		return 0, false
	}
	var d time.Duration
	switch v := v.(type) {
	case int64:
		if v < int64(lo/time.Second) || v > int64(hi/time.Second) {
			t.w.errf(t.at(k), "%d is out of range %d..%d seconds", v, lo/time.Second, hi/time.Second)
			return 0, false
		}
		d = time.Duration(v) * time.Second
	case string:
		var err error
		d, err = time.ParseDuration(v)
		if err != nil {
			t.w.errf(t.at(k), "%q is not a duration (write seconds as an integer, or a duration such as \"7m\")", v)
			return 0, false
		}
		if d < lo || d > hi {
			t.w.errf(t.at(k), "%q is out of range %v..%v", v, lo, hi)
			return 0, false
		}
	default:
		t.w.typeErr(t.at(k), "an integer number of seconds or a duration string", v)
		return 0, false
	}
	return d, true
}

// Value checks shared by both daemons. Each takes the key path for its
// error and reports through the walker.

// unicast parses a global IPv6 unicast address.
func (w *walker) unicast(p, s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Is4In6() {
		w.errf(p, "%q is not an IPv6 address", s)
		return netip.Addr{}, false
	}
	if a.Zone() != "" {
		w.errf(p, "%q must not have a zone", s)
		return netip.Addr{}, false
	}
	if !a.IsGlobalUnicast() {
		w.errf(p, "%q is not a global unicast IPv6 address", s)
		return netip.Addr{}, false
	}
	return a, true
}

// prefix parses an IPv6 prefix without host bits.
func (w *walker) prefix(p, s string) (netip.Prefix, bool) {
	pf, err := netip.ParsePrefix(s)
	if err != nil || !pf.Addr().Is6() || pf.Addr().Is4In6() {
		w.errf(p, "%q is not an IPv6 prefix", s)
		return netip.Prefix{}, false
	}
	if pf.Masked() != pf {
		w.errf(p, "%q has bits set after the prefix length (did you mean %q?)", s, pf.Masked().String())
		return netip.Prefix{}, false
	}
	return pf, true
}

// glob checks an interface-name pattern (path.Match syntax).
func (w *walker) glob(p, s string) bool {
	if s == "" {
		w.errf(p, "empty interface pattern")
		return false
	}
	if _, err := path.Match(s, ""); err != nil {
		w.errf(p, "%q is not a valid pattern (path.Match syntax: * ? [a-z] \\)", s)
		return false
	}
	return true
}

// ifname checks a Linux interface name.
func (w *walker) ifname(p, s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n") {
		w.errf(p, "%q is not a valid interface name", s)
		return false
	}
	return true
}

// absPath checks an absolute file system path.
func (w *walker) absPath(p, s string) bool {
	if !strings.HasPrefix(s, "/") || strings.ContainsRune(s, 0) {
		w.errf(p, "%q is not an absolute path", s)
		return false
	}
	return true
}

func (t *tbl) addr(k string, dst *netip.Addr) bool {
	s, ok := t.str(k)
	if !ok {
		return false
	}
	a, ok := t.w.unicast(t.at(k), s)
	if ok {
		*dst = a
	}
	return ok
}

func (t *tbl) pfx(k string, dst *netip.Prefix) bool {
	s, ok := t.str(k)
	if !ok {
		return false
	}
	pf, ok := t.w.prefix(t.at(k), s)
	if ok {
		*dst = pf
	}
	return ok
}

// prefixes reads an array of IPv6 prefixes; bad ones are reported and
// left out. ok is false when k is absent or not an array.
func (t *tbl) prefixes(k string) ([]netip.Prefix, bool) {
	vals, paths, ok := t.strs(k)
	if !ok {
		return nil, false
	}
	out := make([]netip.Prefix, 0, len(vals))
	for i, s := range vals {
		if pf, ok := t.w.prefix(paths[i], s); ok {
			out = append(out, pf)
		}
	}
	return out, true
}

// required reports k as missing from t.
func (t *tbl) required(k string) {
	t.w.errf(t.at(k), "is required")
}

// requireAll reports the keys of ks missing from t and returns how many
// are. Two or more missing (a shipped file whose examples are still
// commented) make one line naming them all, so that the daemon's refusal
// to start reads as one instruction.
func (t *tbl) requireAll(ks ...string) int {
	var missing []string
	for _, k := range ks {
		if !t.has(k) {
			missing = append(missing, k)
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		t.required(missing[0])
	default:
		t.w.errf(t.path, "fill in %s (see the comments in the file)", strings.Join(missing, ", "))
	}
	return len(missing)
}
