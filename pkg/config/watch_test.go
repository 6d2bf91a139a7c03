package config

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// startWatch runs watch on path and returns a channel that receives one
// value per onChange call.
func startWatch(t *testing.T, path string) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 16)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- watch(ctx, path, func() { changed <- struct{}{} }, func() { close(ready) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Watch: %v", err)
	}
	return changed
}

// waitChange waits for one onChange call. The timeout only bounds a
// failing test; nothing asserts how fast the call comes.
func waitChange(t *testing.T, changed <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no change reported", what)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mcoad.toml")
	writeFile(t, path, "a = 1\n")
	changed := startWatch(t, path)

	writeFile(t, path, "a = 2\n")
	waitChange(t, changed, "write in place")

	// An editor's save: write a temporary file, rename it over the original.
	tmp := filepath.Join(dir, ".mcoad.toml.swp")
	writeFile(t, tmp, "a = 3\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitChange(t, changed, "rename into place")

	// The watch survives the replacement: a later write is seen too.
	writeFile(t, path, "a = 4\n")
	waitChange(t, changed, "write after rename")

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "a = 5\n")
	waitChange(t, changed, "remove and create")
}

func TestWatchFileCreatedLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mcoa-ha.toml")
	changed := startWatch(t, path)
	writeFile(t, path, "x = 1\n")
	waitChange(t, changed, "create")
}

func TestWatchMissingDir(t *testing.T) {
	err := Watch(context.Background(), filepath.Join(t.TempDir(), "no", "such.toml"), func() {})
	if err == nil {
		t.Fatal("watching a missing directory succeeded")
	}
}

// Events that leave the content as it was do not count as changes.
func TestFileStateChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	st := &fileState{path: path}
	if st.changed() {
		t.Error("a missing file changed")
	}
	writeFile(t, path, "1")
	if !st.changed() {
		t.Error("a new file did not change")
	}
	if st.changed() {
		t.Error("an unchanged file changed")
	}
	now := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "1")
	if st.changed() {
		t.Error("rewriting the same content is a change")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if st.changed() {
		t.Error("removal is a change")
	}
	writeFile(t, path, "1")
	if st.changed() {
		t.Error("the same content back is a change")
	}
	writeFile(t, path, "2")
	if !st.changed() {
		t.Error("new content is not a change")
	}
}
