package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/pkg/config"
)

func TestJournalLines(t *testing.T) {
	var out bytes.Buffer
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelDebug)
	log := slog.New(newHandler(&out, config.LogText, lv, true)).With("component", "x")
	log.Debug("d", "k", 1)
	log.Info("i")
	log.Warn("w", "err", "boom")
	log.WithGroup("g").Error("e", "k", "v")
	want := []string{
		`<7>level=DEBUG msg=d component=x k=1`,
		`<6>level=INFO msg=i component=x`,
		`<4>level=WARN msg=w component=x err=boom`,
		`<3>level=ERROR msg=e component=x g.k=v`,
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("journal lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	lv.Set(slog.LevelWarn)
	out.Reset()
	log.Info("hidden")
	if out.Len() != 0 {
		t.Errorf("info logged at level warn: %q", out.String())
	}
}

func TestJSONFormat(t *testing.T) {
	for _, journal := range []bool{false, true} {
		var out bytes.Buffer
		slog.New(newHandler(&out, config.LogJSON, slog.LevelInfo, journal)).Warn("w", "bid", 3)
		line := out.String()
		if journal {
			if !strings.HasPrefix(line, "<4>{") {
				t.Fatalf("journal JSON line %q: want the priority, then the object", line)
			}
			line = line[3:]
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if _, has := m["time"]; has == journal || m["msg"] != "w" || m["bid"] != 3.0 {
			t.Errorf("journal=%v: %v", journal, m)
		}
	}
}

func TestJournalStreamDetection(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dev, ino, ok := fileID(f)
	if !ok {
		t.Skip("no file identity on this system")
	}
	t.Setenv("JOURNAL_STREAM", dev+":"+ino)
	if !journalStream(f) {
		t.Error("stderr is the journal stream, not detected")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%s:%s1", dev, ino))
	if journalStream(f) {
		t.Error("another stream taken for the journal")
	}
	t.Setenv("JOURNAL_STREAM", "")
	if journalStream(f) {
		t.Error("no JOURNAL_STREAM taken for the journal")
	}
}
