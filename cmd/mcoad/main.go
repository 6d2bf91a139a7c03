// Command mcoad is the mobile-node daemon of Multiple Care-of Addresses
// registration (draft-ietf-monami6-multiplecoa-00): it keeps one home
// address and registers every care-of address of the node's interfaces with
// its home agent at once, each binding told apart by a BID.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/mcoad/mcoad/internal/service"

	"github.com/mcoad/mcoad/internal/mn"
	"github.com/mcoad/mcoad/internal/sdjob"
	"github.com/mcoad/mcoad/pkg/config"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("mcoad", flag.ContinueOnError)
	cfgPath := fs.String("config", config.DefaultMNPath, "configuration file")
	check := fs.String("check-config", "", "check this configuration file, print its errors and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	dbusAddr := fs.String("dbus", "", `D-Bus address for mcoad's service and NetworkManager ("" the system bus, "none" no D-Bus)`)
	watchConfig := fs.Bool("watch-config", true, "reload when the configuration file changes")
	cleanup := fs.Bool("cleanup", false, "remove what a mcoad that did not stop cleanly left in the kernel, and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Println("mcoad", version)
		return 0
	}
	if *cleanup {
		// The marks and tables of the configuration when it loads, the
		// defaults otherwise: cleaning up must not depend on a good file.
		dp := config.Dataplane{Mark: config.DefaultMark, Mask: config.DefaultMask, TableBase: config.DefaultTableBase}
		stateDir := config.DefaultStateDir
		if cfg, err := config.LoadMN(*cfgPath); err == nil {
			dp, stateDir = cfg.Dataplane, cfg.MobileNode.StateDir
		}
		// A mobile router's forwarding settings first, while the forward
		// chain that confines its forwarding is still there.
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		err := mn.RestoreForwarding(stateDir, log)
		if mn.SkipCleanup(stateDir, log) {
			// systemd restarts mcoad, which kept its data plane for the
			// next process (state_dir/dataplane-kept.json): left alone
			// this once.
			if err != nil {
				fmt.Fprintln(os.Stderr, "mcoad: cleanup:", err)
				return 1
			}
			return 0
		}
		if err := errors.Join(err, cleanupKernel(dp)); err != nil {
			fmt.Fprintln(os.Stderr, "mcoad: cleanup:", err)
			return 1
		}
		return 0
	}
	if *check != "" {
		if _, err := config.LoadMN(*check); err != nil {
			fmt.Fprintln(os.Stderr, "mcoad:", err)
			return 1
		}
		fmt.Printf("%s: ok\n", *check)
		return 0
	}
	cfg, err := config.LoadMN(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcoad:", err)
		return 1
	}
	log, level := service.NewLogger(cfg.Log)
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var daemon atomic.Pointer[mn.Daemon]
	opt := mn.Options{
		ConfigPath: *cfgPath, Logger: log, Level: level, Version: version,
		Ready:       func() { service.Notify("READY=1") },
		Started:     daemon.Store,
		DBusAddress: *dbusAddr, WatchConfig: *watchConfig,
	}
	// Under systemd (which sets INVOCATION_ID for every service) a SIGTERM
	// may be a restart, which keeps the bindings; systemd is always on
	// the system bus, whatever -dbus says for mcoad's own service.
	if os.Getenv("INVOCATION_ID") != "" && *dbusAddr != mn.NoDBus {
		opt.StopCause = &sdjob.Client{}
	}
	service.OnHUP(ctx, func() {
		d := daemon.Load()
		if d == nil {
			return
		}
		service.Notify("RELOADING=1")
		if err := d.Reload(ctx); err != nil {
			log.Error("SIGHUP reload refused", "err", err)
		}
		service.Notify("READY=1")
	})
	if err := mn.Run(ctx, cfg, opt); err != nil {
		log.Error("mcoad stopped", "err", err)
		return 1
	}
	return 0
}
