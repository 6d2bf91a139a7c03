package nm

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/testutil"

	"github.com/godbus/dbus/v5"

	"github.com/mcoad/mcoad/pkg/nm/nmtest"
)

func requireE2E(t testing.TB, why string) { t.Helper(); nmtest.RequireE2E(t, why) }

func needTools(t testing.TB, tools ...string) { t.Helper(); nmtest.NeedTools(t, tools...) }

const openBusConfig = nmtest.OpenBusConfig

func startBus(t testing.TB, dir, config string) string {
	t.Helper()
	return nmtest.StartBus(t, dir, config)
}

func connect(t testing.TB, addr string) *dbus.Conn {
	t.Helper()
	c, err := Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runCmd runs a command with a deadline and returns its stdout, failing
// the test with its stderr.
func runCmd(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := tryCmd(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func tryCmd(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, what, cond)
}

type syncBuffer = testutil.SyncBuffer

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
