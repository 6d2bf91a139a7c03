package service

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/mcoad/mcoad/pkg/config"
)

// NewLogger returns the daemon's logger on stderr, in the configured
// format ("text" or "json"), and the level it logs at, which a reload may
// change. Under systemd's journal (JOURNAL_STREAM names stderr) each line
// starts with its syslog priority (<3> to <7>, which journald takes as the
// entry's priority, so `journalctl -p warning` works) and carries no time
// of its own: the journal stamps it.
func NewLogger(c config.Log) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(c.Level)
	return slog.New(newHandler(os.Stderr, c.Format, lv, journalStream(os.Stderr))), lv
}

// journalStream reports whether f is the stream systemd connected to the
// journal (sd_journal_stream_fd(3): JOURNAL_STREAM is "device:inode").
func journalStream(f *os.File) bool {
	want := os.Getenv("JOURNAL_STREAM")
	if want == "" {
		return false
	}
	dev, ino, ok := fileID(f)
	return ok && want == dev+":"+ino
}

func newHandler(w io.Writer, format string, lv slog.Leveler, journal bool) slog.Handler {
	if !journal {
		opts := &slog.HandlerOptions{Level: lv}
		if format == config.LogJSON {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	j := &journalHandler{out: w, mu: new(sync.Mutex), buf: new(bytes.Buffer)}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: dropTime}
	if format == config.LogJSON {
		j.inner = slog.NewJSONHandler(j.buf, opts)
	} else {
		j.inner = slog.NewTextHandler(j.buf, opts)
	}
	return j
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// journalHandler writes each record as one line prefixed with its syslog
// priority. Derived handlers share the buffer and its lock.
type journalHandler struct {
	inner slog.Handler // writes into buf
	out   io.Writer
	mu    *sync.Mutex
	buf   *bytes.Buffer
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	h.buf.WriteString(priority(r.Level))
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	_, err := h.out.Write(h.buf.Bytes())
	return err
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), out: h.out, mu: h.mu, buf: h.buf}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), out: h.out, mu: h.mu, buf: h.buf}
}

// priority is the sd-daemon(3) prefix of a level: err, warning, info, debug.
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}
