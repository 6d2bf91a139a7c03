package bul

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := NewFileStore(dir, nil)
	st, err := s.Load()
	if err != nil || len(st.Sequences) != 0 {
		t.Fatalf("missing file: %+v, %v", st, err)
	}
	if err := s.Save(PersistentState{Sequences: map[string]uint16{ha.String(): 4242}}); err != nil {
		t.Fatal(err)
	}
	st, err = NewFileStore(dir, nil).Load()
	if err != nil || st.Sequences[ha.String()] != 4242 {
		t.Fatalf("reloaded %+v, %v", st, err)
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != StateFileName {
		t.Fatalf("dir holds %v", ents)
	}
}

func TestFileStoreCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, StateFileName)
	if err := os.WriteFile(path, []byte("{\"sequences\": {"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewFileStore(dir, slog.New(slog.DiscardHandler))
	s.now = func() time.Time { return time.Unix(1700000000, 0) }
	st, err := s.Load()
	if err != nil || len(st.Sequences) != 0 {
		t.Fatalf("corrupt file: %+v, %v (want a fresh start)", st, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("corrupt file still in place: %v", err)
	}
	aside := path + ".corrupt-1700000000"
	b, err := os.ReadFile(aside)
	if err != nil || !strings.HasPrefix(string(b), "{\"sequences\"") {
		t.Fatalf("corrupt file not kept aside: %q, %v", b, err)
	}
	// The engine starts with it and writes a good file.
	h := newHarness(t, func(c *Config) { c.Store = s })
	h.set(eth0)
	h.one()
	st, err = NewFileStore(dir, nil).Load()
	if err != nil || !(st.Sequences[ha.String()] != 0) {
		t.Fatalf("after a BU: %+v, %v", st, err)
	}
}

func TestFileStoreUnwritable(t *testing.T) {
	s := NewFileStore(filepath.Join(t.TempDir(), "missing-dir"), nil)
	if err := s.Save(PersistentState{}); err == nil {
		t.Fatal("save into a missing directory succeeded")
	}
	// The engine keeps working without persistence.
	h := newHarness(t, func(c *Config) { c.Store = s })
	h.set(eth0)
	h.accept(h.one())
	h.wantState(1, StateRegistered)
}
