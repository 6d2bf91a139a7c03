package control

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenRemovesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "mcoad.sock")
	// A socket file left behind by a daemon that died.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatal("no stale socket to test with")
	}
	// Before the new server starts the client says nobody listens.
	_, err = NewClient(sock).Status(context.Background())
	if !errors.Is(err, ErrNotRunning) || err.Error() != "mcoad is not running (nothing listens on "+sock+")" {
		t.Errorf("stale socket: %v", err)
	}
	ts := startServer(t, Config{MN: sampleMN(), Socket: sock})
	if _, err := ts.client.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket %v %v, want mode 0660", fi.Mode(), err)
	}

	// A second server refuses to take a live socket over.
	srv2, err := NewServer(Config{MN: sampleMN(), Socket: sock, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := srv2.Listen(); err == nil {
		l.Close()
		t.Fatal("second server took over a live socket")
	} else if !strings.Contains(err.Error(), "another server is already listening on "+sock) {
		t.Errorf("second server: %v", err)
	}
	if _, err := ts.client.Status(context.Background()); err != nil {
		t.Errorf("first server broken by the second: %v", err)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mcoad.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{MN: sampleMN(), Socket: path, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := srv.Listen(); err == nil {
		l.Close()
		t.Fatal("listened over a regular file")
	} else if !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("error %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Error("regular file was touched")
	}
}

func TestListenCreatesDirectory(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "mcoad", "mcoad.sock")
	ts := startServer(t, Config{MN: sampleMN(), Socket: sock})
	if _, err := ts.client.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestClientNotRunning(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ sock, want string }{
		{filepath.Join(dir, "mcoad.sock"), "mcoad is not running (no socket at " + filepath.Join(dir, "mcoad.sock") + ")"},
		{filepath.Join(dir, "nodir", "mcoa-ha.sock"), "mcoa-ha is not running (no socket at " + filepath.Join(dir, "nodir", "mcoa-ha.sock") + ")"},
	} {
		cl := NewClient(c.sock)
		_, err := cl.Status(context.Background())
		if err == nil || err.Error() != c.want || !errors.Is(err, ErrNotRunning) || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v", c.sock, err)
		}
		if _, err := cl.Events(context.Background()); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Events: %v", err)
		}
	}
}
