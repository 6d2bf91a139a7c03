package service

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcoad/mcoad/pkg/control"
)

// fakeDaemon serves until its context ends and counts its reloads.
type fakeDaemon struct {
	sock    string
	ready   chan struct{}
	reloads atomic.Int32
}

func (d *fakeDaemon) Run(ctx context.Context) error {
	close(d.ready)
	<-ctx.Done()
	return nil
}
func (d *fakeDaemon) Ready() <-chan struct{} { return d.ready }
func (d *fakeDaemon) Reload(context.Context) error {
	d.reloads.Add(1)
	return nil
}
func (d *fakeDaemon) Control() Control {
	return Control{Server: control.Config{Socket: d.sock, Name: control.DaemonHA, HA: d}}
}
func (d *fakeDaemon) Status(context.Context) (control.Status, error) {
	return control.Status{Daemon: control.DaemonHA}, nil
}
func (d *fakeDaemon) Cache(context.Context) ([]control.CacheEntry, error) { return nil, nil }

// Run serves the control API once the daemon is ready, tells systemd
// READY=1, reloads on SIGHUP and on POST /v1/reload (between RELOADING=1
// and READY=1), and on stop says STOPPING=1 and removes the socket.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	t.Setenv("NOTIFY_SOCKET", filepath.Join(dir, "notify"))
	said := func(want string) {
		t.Helper()
		notify.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, err := notify.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("systemd got %q (%v), want %s", buf[:n], err, want)
		}
	}
	d := &fakeDaemon{sock: filepath.Join(dir, "ctl", "mcoa-ha.sock"), ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, d, Options{}) }()
	said("READY=1")
	c := control.NewClient(d.sock)
	if st, err := c.Status(context.Background()); err != nil || st.Daemon != control.DaemonHA {
		t.Fatalf("status %+v, %v", st, err)
	}

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	said("RELOADING=1")
	said("READY=1")
	if err := c.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	said("RELOADING=1")
	said("READY=1")
	if n := d.reloads.Load(); n != 2 {
		t.Fatalf("%d reloads, want 2", n)
	}

	cancel()
	said("STOPPING=1")
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(d.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Run: %v", err)
	}
}

// A daemon whose control socket cannot be made stops, with the error.
func TestRunControlError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{sock: file, ready: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Run(ctx, d, Options{})
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Run: %v", err)
	}
}
