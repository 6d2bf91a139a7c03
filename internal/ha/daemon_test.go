package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/service"
	"github.com/mcoad/mcoad/pkg/clock"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/proto"
)

const daemonFile = haText + `state_dir = %q

[dataplane]
backend = "none"

[log]
level = %q
`

// mcoa-ha as its main function builds it (New, with a configuration file)
// and runs it (Run), with a recording transport, a fake proxy and a fake
// clock: it answers a BU, and a Reload of the file changes the log level
// and keeps the binding; a bad file is refused.
func TestDaemonAnswersAndReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mcoa-ha.toml")
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf(daemonFile, filepath.Join(dir, "state"), "info"))
	cfg, err := config.LoadHA(path)
	if err != nil {
		t.Fatal(err)
	}
	tr, level, events := newFake(), new(slog.LevelVar), control.NewEvents(0)
	defer events.Close()
	a, err := New(cfg, Deps{Command: service.Command{ConfigPath: path, Level: level}, Transport: tr, Proxy: &fakeProxy{}, Events: events,
		Clock: clock.NewFake(time.Unix(1_700_000_000, 0))})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	select {
	case <-a.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	sub := events.Subscribe()
	defer sub.Close()

	tr.in <- bu(coa1, 1, 10, proto.BID{ID: 1, PrioStatus: 9, C: true, CoA: coa1})
	if ba := tr.next(t); ba.MH.Type != proto.TypeBA || ba.MH.Status != proto.StatusAccepted {
		t.Fatalf("answer %v status %d", ba.MH.Type, ba.MH.Status)
	}

	write(fmt.Sprintf(daemonFile, filepath.Join(dir, "state"), "debug"))
	if err := a.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after the reload, want debug", level.Level())
	}
	if es, err := a.Cache(context.Background()); err != nil || len(es) != 1 || es[0].CoA != coa1 {
		t.Fatalf("cache after the reload: %+v, %v", es, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("no reload event: %v", err)
		}
		if ev.Kind == control.EventReload {
			break
		}
	}

	write("[home_agent]\naddress = 7\n")
	if err := a.Reload(context.Background()); !errors.Is(err, control.ErrInvalid) {
		t.Fatalf("reload of a bad file: %v, want ErrInvalid", err)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after a refused reload", level.Level())
	}
}
