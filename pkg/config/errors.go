package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one configuration problem.
type Error struct {
	File string // the file name as given to Load or Parse
	Line int    // 1-based; 0 when the key is absent from the file (a missing required key)
	Key  string // dotted path such as mobile_node.home_address or interface[1].match
	Msg  string
	Err  error // underlying error, if any (for example from reading a key file)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one file, in line order. A non-nil error
// returned by Parse* and Load* for bad content is an Errors with at least one
// entry.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As and errors.Is look at every entry.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sort orders by line; errors without a line (missing keys) go last. The
// sort is stable so that problems on one line keep the order they were found.
func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b *Error) int {
		la, lb := a.Line, b.Line
		if la == 0 {
			la = int(^uint(0) >> 1)
		}
		if lb == 0 {
			lb = int(^uint(0) >> 1)
		}
		return cmp.Compare(la, lb)
	})
}
