package service

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
)

// Daemon is mcoad's or mcoa-ha's daemon (internal/mn, internal/ha) as Run
// serves it: New has built it, Run runs it.
type Daemon interface {
	// Run serves until ctx ends, then stops cleanly and releases what
	// New opened.
	Run(ctx context.Context) error
	// Ready is closed once the daemon serves.
	Ready() <-chan struct{}
	// Reload reads the configuration file again and applies what can
	// change at run time; a refused file is an error wrapping
	// control.ErrInvalid, and the running configuration stays.
	Reload(ctx context.Context) error
	// Control is the control API the daemon serves.
	Control() Control
}

// Control is a daemon's control API: the server's configuration (socket,
// group, backend, events, metrics) and the TCP address of its metrics
// listener ("" none).
type Control struct {
	Server         control.Config
	MetricsAddress string
}

// Options are what the command line adds to a daemon's run.
type Options struct {
	// ConfigPath is the configuration file, watched when WatchConfig.
	ConfigPath  string
	WatchConfig bool
	Logger      *slog.Logger // nil: slog.Default()
}

// Run runs d until ctx ends and it has stopped. Once d is ready it serves
// its control API (and metrics listener), tells systemd READY=1, and
// reloads on SIGHUP, on a change of the configuration file and on the
// control API's POST /v1/reload, one reload at a time, each between
// RELOADING=1 and READY=1. When ctx ends it tells systemd STOPPING=1; the
// control API serves until d's Run has returned.
func Run(ctx context.Context, d Daemon, o Options) error {
	s := &runner{d: d, o: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	// From the start: SIGHUP's default action would end the process. One
	// that comes before the daemon is ready waits for it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	runCtx, stopDaemon := context.WithCancel(ctx)
	defer stopDaemon()
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(runCtx) }()
	select {
	case <-d.Ready():
	case err := <-runErr:
		return err
	}
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	served, srvErr, err := s.serveControl(srvCtx)
	if err != nil {
		stopServer()
		stopDaemon()
		<-runErr
		return err
	}
	defer func() {
		stopServer()
		served.Wait()
	}()
	Notify("READY=1")
	changed := make(chan struct{}, 1)
	if o.WatchConfig && o.ConfigPath != "" {
		go s.watch(ctx, changed)
	}
	done := ctx.Done()
	for {
		select {
		case <-hup:
			s.reload(ctx, "SIGHUP")
		case <-changed:
			s.log.Info("configuration file changed", "path", o.ConfigPath)
			s.reload(ctx, "file changed")
		case <-done:
			Notify("STOPPING=1")
			done = nil
		case err := <-srvErr:
			// As any of the daemon's parts failing: it stops.
			stopDaemon()
			if rerr := <-runErr; rerr != nil {
				return rerr
			}
			return err
		case err := <-runErr:
			return err
		}
	}
}

type runner struct {
	d   Daemon
	o   Options
	log *slog.Logger
	mu  sync.Mutex // one reload at a time
}

// reload runs one reload for trigger (SIGHUP, the file, the control API).
func (s *runner) reload(ctx context.Context, trigger string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	Notify("RELOADING=1")
	defer Notify("READY=1")
	err := s.d.Reload(ctx)
	if err != nil {
		s.log.Warn("reload refused", "trigger", trigger, "err", err)
	}
	return err
}

// watch reports changes of the configuration file.
func (s *runner) watch(ctx context.Context, changed chan<- struct{}) {
	WatchConfig(ctx, s.o.ConfigPath, s.log, func() {
		select {
		case changed <- struct{}{}:
		default: // one pending reload reads the file as it is then
		}
	})
}

// WatchConfig calls onChange each time the configuration file at path
// changes (an editor saving, a tool renaming a new file over it), until
// ctx ends. It never fails the daemon: without a watch, SIGHUP and
// `mcoactl reload` still work.
func WatchConfig(ctx context.Context, path string, log *slog.Logger, onChange func()) {
	err := config.Watch(ctx, path, onChange)
	if err != nil && ctx.Err() == nil {
		log.Warn("configuration file not watched; reload with SIGHUP or mcoactl reload", "path", path, "err", err)
	}
}

// serveControl starts the control server and the metrics listener; they
// serve until ctx ends, and served is done once they have stopped. One
// that fails before says why on errc.
func (s *runner) serveControl(ctx context.Context) (served *sync.WaitGroup, errc <-chan error, err error) {
	c := s.d.Control()
	sc := c.Server
	reload := func(ctx context.Context) error { return s.reload(ctx, "control API") }
	if sc.MN != nil {
		sc.MN = reloadingMN{sc.MN, reload}
	} else {
		sc.Reload = reload
	}
	if sc.Logger == nil {
		sc.Logger = s.log
	}
	srv, err := control.NewServer(sc)
	if err != nil {
		return nil, nil, err
	}
	l, err := srv.Listen()
	if err != nil {
		return nil, nil, err
	}
	var ml net.Listener
	if c.MetricsAddress != "" {
		if ml, err = net.Listen("tcp", c.MetricsAddress); err != nil {
			l.Close()
			return nil, nil, fmt.Errorf("metrics address: %w", err)
		}
	}
	failed := make(chan error, 2)
	served = new(sync.WaitGroup)
	served.Go(func() {
		if err := srv.Serve(ctx, l); err != nil && ctx.Err() == nil {
			failed <- err
		}
	})
	if ml != nil {
		served.Go(func() {
			if err := srv.ServeMetrics(ctx, ml); err != nil && ctx.Err() == nil {
				failed <- err
			}
		})
	}
	return served, failed, nil
}

// reloadingMN routes mcoad's POST /v1/reload through the runner, as
// mcoa-ha's and both daemons' SIGHUP and file changes go.
type reloadingMN struct {
	control.MNBackend
	reload func(context.Context) error
}

func (m reloadingMN) Reload(ctx context.Context) error { return m.reload(ctx) }
