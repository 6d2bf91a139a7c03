package config

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// The TOML library reports the line of syntax errors but not the line of a
// key whose value we reject later, so we index the lines ourselves. The
// index maps key paths to the line where the key (or table header, or array
// element) appears. It runs only on input that the TOML parser accepted, but
// it is written to tolerate anything: on confusion it skips to the next line.
//
// Paths are internal strings: segments joined by sepKey, with array indexes
// encoded as sepIndex followed by the decimal index; displayKey turns them
// into the form users see (home_agent.mn[0].key).

const (
	sepKey   = "\x00"
	sepIndex = "\x01"
)

func joinKey(parent, seg string) string {
	if parent == "" {
		return seg
	}
	return parent + sepKey + seg
}

func indexKey(parent string, i int) string {
	return parent + sepKey + sepIndex + strconv.Itoa(i)
}

// parentKey strips the last segment; "" at the top.
func parentKey(p string) string {
	i := strings.LastIndex(p, sepKey)
	if i < 0 {
		return ""
	}
	return p[:i]
}

func displayKey(p string) string {
	if p == "" {
		return ""
	}
	var b strings.Builder
	for i, seg := range strings.Split(p, sepKey) {
		if n, ok := strings.CutPrefix(seg, sepIndex); ok {
			b.WriteByte('[')
			b.WriteString(n)
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(quoteSeg(seg))
	}
	return b.String()
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func quoteSeg(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		if !isBare(s[i]) {
			return strconv.Quote(s)
		}
	}
	return s
}

// lineIndex maps internal key paths to 1-based lines.
type lineIndex map[string]int

// line returns the line of p, or of its nearest ancestor that has one (an
// element of an inline array or table points at its parent's line), or 0.
func (ix lineIndex) line(p string) int {
	for p != "" {
		if l, ok := ix[p]; ok {
			return l
		}
		p = parentKey(p)
	}
	return 0
}

const maxNesting = 100

type indexer struct {
	src      string
	pos      int
	line     int
	ix       lineIndex
	implicit map[string]bool // entries created by dotted keys or header prefixes
	aot      map[string]int  // element count of each array of tables
}

func buildIndex(src string) lineIndex {
	s := &indexer{src: src, line: 1, ix: lineIndex{}, implicit: map[string]bool{}, aot: map[string]int{}}
	table := ""
	for s.pos < len(s.src) {
		s.skipSpace()
		switch c := s.peek(); {
		case c == '#' || c == '\n' || c == '\r':
			s.skipLine()
		case c == '[':
			line := s.line
			s.next()
			aot := false
			if s.peek() == '[' {
				s.next()
				aot = true
			}
			if segs, ok := s.keyPath(); ok {
				table = s.header(segs, aot, line)
			}
			s.skipLine()
		default:
			line := s.line
			segs, ok := s.keyPath()
			if !ok || s.peek() != '=' {
				s.skipLine()
				continue
			}
			s.next()
			p := s.dotted(table, segs, line)
			s.skipSpace()
			s.value(p, 0)
			s.skipLine()
		}
	}
	return s.ix
}

func (s *indexer) record(p string, line int, implicit bool) {
	if _, ok := s.ix[p]; ok && (implicit || !s.implicit[p]) {
		return
	}
	s.ix[p] = line
	s.implicit[p] = implicit
}

// dotted records a.b.c = ... under table and returns the value's path.
func (s *indexer) dotted(table string, segs []string, line int) string {
	p := table
	for i, seg := range segs {
		p = joinKey(p, seg)
		s.record(p, line, i < len(segs)-1)
	}
	return p
}

// header resolves a [table] or [[array]] header to an indexed path: a
// segment that names an array of tables refers to its latest element.
func (s *indexer) header(segs []string, aot bool, line int) string {
	p := ""
	for i, seg := range segs {
		p = joinKey(p, seg)
		last := i == len(segs)-1
		switch n := s.aot[p]; {
		case last && aot:
			s.aot[p] = n + 1
			s.record(p, line, false)
			p = indexKey(p, n)
		case n > 0:
			p = indexKey(p, n-1)
		}
		s.record(p, line, !last)
	}
	return p
}

func (s *indexer) peek() byte {
	if s.pos >= len(s.src) {
		return 0
	}
	return s.src[s.pos]
}

func (s *indexer) next() {
	if s.pos < len(s.src) {
		if s.src[s.pos] == '\n' {
			s.line++
		}
		s.pos++
	}
}

func (s *indexer) skipSpace() {
	for c := s.peek(); c == ' ' || c == '\t'; c = s.peek() {
		s.next()
	}
}

func (s *indexer) skipLine() {
	for s.pos < len(s.src) && s.src[s.pos] != '\n' {
		s.pos++
	}
	s.next()
}

// skipBlank skips white space, newlines and comments (inside arrays and
// inline tables).
func (s *indexer) skipBlank() {
	for s.pos < len(s.src) {
		switch s.peek() {
		case ' ', '\t', '\r', '\n':
			s.next()
		case '#':
			for s.pos < len(s.src) && s.src[s.pos] != '\n' {
				s.pos++
			}
		default:
			return
		}
	}
}

// keyPath reads a dotted key (bare or quoted segments) and leaves the
// position after the white space that follows it.
func (s *indexer) keyPath() ([]string, bool) {
	var segs []string
	for {
		s.skipSpace()
		var seg string
		switch c := s.peek(); {
		case c == '"':
			start := s.pos + 1
			if !s.quoted('"', true) {
				return nil, false
			}
			seg = unescape(s.src[start : s.pos-1])
		case c == '\'':
			start := s.pos + 1
			if !s.quoted('\'', false) {
				return nil, false
			}
			seg = s.src[start : s.pos-1]
		case isBare(c):
			start := s.pos
			for isBare(s.peek()) {
				s.next()
			}
			seg = s.src[start:s.pos]
		default:
			return nil, false
		}
		segs = append(segs, seg)
		s.skipSpace()
		if s.peek() != '.' {
			return segs, true
		}
		s.next()
	}
}

// value skips one value, indexing the elements of arrays and the keys of
// inline tables under p.
func (s *indexer) value(p string, depth int) bool {
	if depth > maxNesting {
		return false
	}
	rest := s.src[s.pos:]
	switch {
	case strings.HasPrefix(rest, `"""`):
		return s.multiline(`"""`, true)
	case strings.HasPrefix(rest, `'''`):
		return s.multiline(`'''`, false)
	case strings.HasPrefix(rest, `"`):
		return s.quoted('"', true)
	case strings.HasPrefix(rest, `'`):
		return s.quoted('\'', false)
	case strings.HasPrefix(rest, `[`):
		return s.array(p, depth+1)
	case strings.HasPrefix(rest, `{`):
		return s.inlineTable(p, depth+1)
	}
	start := s.pos
	s.scalar()
	// A date and a time separated by a space: 1979-05-27 07:32:00.
	if w := s.src[start:s.pos]; len(w) == 10 && w[4] == '-' && w[7] == '-' &&
		s.pos+1 < len(s.src) && s.src[s.pos] == ' ' && s.src[s.pos+1] >= '0' && s.src[s.pos+1] <= '9' {
		s.next()
		s.scalar()
	}
	return true
}

func (s *indexer) scalar() {
	for s.pos < len(s.src) && !strings.ContainsRune(" \t\r\n,]}#", rune(s.src[s.pos])) {
		s.pos++
	}
}

func (s *indexer) array(p string, depth int) bool {
	s.next() // [
	for i := 0; ; i++ {
		s.skipBlank()
		if s.peek() == ']' {
			s.next()
			return true
		}
		ep := indexKey(p, i)
		s.record(ep, s.line, false)
		if !s.value(ep, depth) {
			return false
		}
		s.skipBlank()
		switch s.peek() {
		case ',':
			s.next()
		case ']':
			s.next()
			return true
		default:
			return false
		}
	}
}

func (s *indexer) inlineTable(p string, depth int) bool {
	s.next() // {
	for {
		s.skipBlank()
		if s.peek() == '}' {
			s.next()
			return true
		}
		line := s.line
		segs, ok := s.keyPath()
		if !ok || s.peek() != '=' {
			return false
		}
		s.next()
		kp := s.dotted(p, segs, line)
		s.skipSpace()
		if !s.value(kp, depth) {
			return false
		}
		s.skipBlank()
		switch s.peek() {
		case ',':
			s.next()
		case '}':
			s.next()
			return true
		default:
			return false
		}
	}
}

// quoted skips a single-line string: "..." (escapes true: honouring
// backslash escapes) or '...'.
func (s *indexer) quoted(quote byte, escapes bool) bool {
	s.next()
	for s.pos < len(s.src) {
		switch c := s.src[s.pos]; {
		case escapes && c == '\\':
			s.pos++
			if s.peek() == '\n' {
				return false
			}
			s.next()
		case c == quote:
			s.pos++
			return true
		case c == '\n':
			return false
		default:
			s.pos++
		}
	}
	return false
}

// multiline skips a multi-line string (three quote marks, basic or
// literal); up to two quote marks right before the
// closing delimiter belong to the content.
func (s *indexer) multiline(delim string, escapes bool) bool {
	s.pos += 3
	for s.pos < len(s.src) {
		if escapes && s.src[s.pos] == '\\' {
			s.next()
			s.next()
			continue
		}
		if strings.HasPrefix(s.src[s.pos:], delim) {
			s.pos += 3
			for i := 0; i < 2 && s.peek() == delim[0]; i++ {
				s.pos++
			}
			return true
		}
		s.next()
	}
	return false
}

// unescape decodes the escapes of a TOML basic string (used for quoted
// keys). Malformed escapes are kept as written; the TOML parser has already
// rejected them anyway.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case '"', '\\':
			b.WriteByte(c)
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
			if i+1+n > len(s) {
				b.WriteByte('\\')
				b.WriteByte(c)
				continue
			}
			v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
			if err != nil || !utf8.ValidRune(rune(v)) {
				b.WriteByte('\\')
				b.WriteByte(c)
				continue
			}
			b.WriteRune(rune(v))
			i += n
		default:
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	return b.String()
}
