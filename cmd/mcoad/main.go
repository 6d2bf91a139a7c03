// Command mcoad is the mobile-node daemon of Multiple Care-of Addresses
// registration (draft-ietf-monami6-multiplecoa-00): it keeps one home
// address and registers every care-of address of the node's interfaces with
// its home agent at once, each binding told apart by a BID.
package main

import (
	"errors"
	"log/slog"
	"os"

	"github.com/mcoad/mcoad/internal/mn"
	"github.com/mcoad/mcoad/internal/sdjob"
	"github.com/mcoad/mcoad/internal/service"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs, f := service.NewFlags(control.DaemonMN, config.DefaultMNPath, os.Stderr)
	dbusAddr := fs.String("dbus", "", `D-Bus address for mcoad's service and NetworkManager ("" the system bus, "none" no D-Bus)`)
	watchConfig := fs.Bool("watch-config", true, "reload when the configuration file changes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return service.Main(f, service.Program[*config.MN]{
		Name: control.DaemonMN, Version: version,
		Load:    config.LoadMN,
		Log:     func(c *config.MN) config.Log { return c.Log },
		Cleanup: cleanup,
		New: func(cfg *config.MN, cmd service.Command) (service.Daemon, error) {
			deps := mn.Deps{Command: cmd, DBusAddress: *dbusAddr}
			// Under systemd a SIGTERM may be a restart, which keeps the
			// bindings; systemd is always on the system bus, whatever
			// -dbus says for mcoad's own service.
			if service.UnderSystemd() && *dbusAddr != mn.NoDBus {
				deps.StopCause = &sdjob.Client{}
			}
			return mn.New(cfg, deps)
		},
		WatchConfig: *watchConfig,
		Stdout:      os.Stdout, Stderr: os.Stderr,
	})
}

// cleanup serves -cleanup with the marks, tables and state directory of
// the configuration when it loads, the defaults otherwise: cleaning up
// must not depend on a good file.
func cleanup(path string) error {
	dp := config.Dataplane{Mark: config.DefaultMark, Mask: config.DefaultMask, TableBase: config.DefaultTableBase, BPFDir: config.DefaultBPFDir}
	stateDir := config.DefaultStateDir
	if cfg, err := config.LoadMN(path); err == nil {
		dp, stateDir = cfg.Dataplane, cfg.MobileNode.StateDir
	}
	// A mobile router's forwarding settings first, while the forward
	// chain that confines its forwarding is still there.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	err := mn.RestoreForwarding(stateDir, log)
	if mn.SkipCleanup(stateDir, log) {
		// systemd restarts mcoad, which kept its data plane for the next
		// process (state_dir/dataplane-kept.json): left alone this once.
		return err
	}
	return errors.Join(err, cleanupKernel(dp))
}
