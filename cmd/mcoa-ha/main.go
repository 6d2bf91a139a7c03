// Command mcoa-ha is the home agent of mcoad's Multiple Care-of Addresses
// registration (draft-ietf-monami6-multiplecoa-00 section 6): it keeps a
// binding cache of several care-of addresses per home address, answers
// Binding Updates, defends the home addresses on the home link, and serves
// its cache on the control socket (`mcoactl cache`). With [correspondent]
// enabled it is also, or only (no [home_agent]), a correspondent node.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mcoad/mcoad/internal/service"

	"github.com/mcoad/mcoad/internal/ha"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/correspondent"
	"github.com/mcoad/mcoad/pkg/dataplane/homeagent"
	"github.com/mcoad/mcoad/pkg/dataplane/proxynd"
	"github.com/mcoad/mcoad/pkg/mhsock"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int { return runWith(args, os.Stderr) }

// runWith is run with the standard error stream given (tests read it).
func runWith(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcoa-ha", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultHAPath, "configuration file")
	check := fs.String("check-config", "", "check this configuration file, print its errors and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	cleanup := fs.Bool("cleanup", false, "remove what a mcoa-ha that did not stop cleanly left in the kernel, and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Println("mcoa-ha", version)
		return 0
	}
	if *cleanup {
		// The home link and prefixes of the file when it loads; cleaning
		// up must not depend on a good file (service.go).
		cfg, _ := config.LoadHA(*cfgPath)
		if err := cleanupKernel(cfg); err != nil {
			fmt.Fprintln(stderr, "mcoa-ha: cleanup:", err)
			return 1
		}
		return 0
	}
	if *check != "" {
		// As mcoad's: the file named, whatever -config says.
		if _, err := config.LoadHA(*check); err != nil {
			fmt.Fprintln(stderr, "mcoa-ha:", err)
			return 1
		}
		fmt.Printf("%s: ok\n", *check)
		return 0
	}
	cfg, err := config.LoadHA(*cfgPath)
	if err != nil {
		// On stderr, so that `systemctl status` shows it.
		fmt.Fprintln(stderr, "mcoa-ha:", err)
		return 1
	}
	log, level := service.NewLogger(cfg.Log)
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, *cfgPath, level, log); err != nil {
		log.Error("mcoa-ha stopped", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg *config.HA, path string, level *slog.LevelVar, log *slog.Logger) error {
	prof, err := cfg.WireProfile()
	if err != nil {
		return err
	}
	// A home agent's address sits on the home link while its answers go
	// out towards the care-of addresses: let routing pick the interface.
	conn, err := mhsock.Listen(&mhsock.Config{Profile: prof, NFTable: "mcoa_ha_mh", NoPin: true, Logger: log})
	if err != nil {
		return fmt.Errorf("mobility header socket: %w", err)
	}
	defer conn.Close()

	// A correspondent node alone has no home link: no proxy neighbour
	// advertisements and no home agent data plane.
	isHA := cfg.HomeAgentRole()
	var proxy ha.Proxy
	if ifname := cfg.HomeAgent.Interface; isHA && ifname != "" {
		p, err := proxynd.New(ifname, log)
		if err != nil {
			return err
		}
		defer p.Close()
		proxy = p
		// A killed run's proxy entries: the agent keeps those of the
		// bindings it restores and removes the others.
		if left, err := p.Adopt(cfg.HomeAgent.Serve); err != nil {
			log.Warn("proxy entries of a previous run not adopted", "err", err)
		} else if len(left) > 0 {
			log.Info("proxy entries of a previous run adopted", "hoas", left)
		}
	}

	var plane ha.Plane
	var planeStats func() dataplane.BindingStats
	if isHA && cfg.Dataplane.Backend != config.BackendNone {
		// Home-address traffic through tunnels to the bindings; the
		// home agent's data plane is the userspace one whatever the
		// backend (it needs no ip6_tunnel).
		p, err := homeagent.New(&dataplane.HAConfig{Address: cfg.HomeAgent.Address, Logger: log})
		if err != nil {
			return fmt.Errorf("data plane: %w", err)
		}
		defer p.Close()
		plane, planeStats = ha.NewPlane(p), p.Stats
	}

	// The correspondent's route-optimised data path (type 2 routing
	// headers out, Home Address options in); packets with a Home Address
	// option and no binding get a Binding Error from the agent.
	var agentRef atomic.Pointer[ha.Agent] // set once the agent exists
	var cnPlane ha.CNPlane
	var cnStats func() dataplane.BindingStats
	if cfg.Correspondent.Enabled && cfg.Dataplane.Backend != config.BackendNone {
		p, err := correspondent.New(&correspondent.Config{Logger: log, BindingError: func(src, dst, hoa netip.Addr) {
			agent := agentRef.Load()
			if agent == nil {
				return
			}
			if _, err := agent.HomeAddressOption(ctx, src, dst, hoa); err != nil && ctx.Err() == nil {
				log.Warn("binding error for a home address option", "src", src, "hoa", hoa, "err", err)
			}
		}})
		if err != nil {
			return fmt.Errorf("correspondent data plane: %w", err)
		}
		defer p.Close()
		cnPlane, cnStats = p, p.Stats
	}

	events := control.NewEvents(0)
	defer events.Close()
	// The saved bindings come back in agent.Run, after the leftovers of a
	// killed run are gone: the mobility header socket replaced its
	// nftables table, the data planes made their devices afresh (a
	// killed process's TUN devices and their routes went with it) and
	// replaced the correspondent's ip rules.
	var stateDir string
	if isHA {
		stateDir = cfg.HomeAgent.StateDir
	}
	agent, err := ha.New(ha.Config{HA: cfg, Transport: conn, Proxy: proxy, Plane: plane, CNPlane: cnPlane, Events: events,
		Logger: log, Version: version, StateDir: stateDir})
	if err != nil {
		return err
	}
	agentRef.Store(agent)
	if err := os.MkdirAll(filepath.Dir(cfg.Control.Socket), 0o755); err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	// Reload on SIGHUP and when the file changes; a bad file is refused
	// with its errors and the running configuration stays.
	running := cfg // the last configuration applied (reloads run one at a time)
	var reloadMu sync.Mutex
	reload := func(why string) error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		next, err := config.LoadHA(path)
		if err != nil {
			log.Error("reload refused", "trigger", why, "err", err)
			return fmt.Errorf("%w: %v", control.ErrInvalid, err)
		}
		restart, err := agent.Reload(ctx, next)
		if err != nil {
			log.Error("reload", "trigger", why, "err", err)
			return err
		}
		warnUnauthenticated(log, running, next)
		running = next
		level.Set(next.Log.Level)
		if len(restart) > 0 {
			log.Warn("reload: these change only on restart", "sections", restart)
		}
		log.Info("configuration reloaded", "trigger", why)
		return nil
	}
	srv, err := control.NewServer(control.Config{
		Socket: cfg.Control.Socket, Group: cfg.Control.Group, Name: "mcoa-ha",
		HA: agent, Events: events, Logger: log,
		Reload: func(context.Context) error { return reload("control API") },
		Metrics: control.MetricsFunc(func() []control.Metric {
			ms := agent.Metrics()
			if planeStats != nil {
				ms = append(ms, ha.PlaneMetrics(planeStats())...)
			}
			if cnStats != nil {
				ms = append(ms, ha.CNPlaneMetrics(cnStats())...)
			}
			return ms
		}),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.ListenAndServe(ctx) }()
	if addr := cfg.Control.MetricsAddress; addr != "" {
		ml, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("metrics address: %w", err)
		}
		go func() {
			if err := srv.ServeMetrics(ctx, ml); err != nil {
				log.Warn("metrics", "err", err)
			}
		}()
	}

	if isHA {
		log.Info("mcoa-ha running as home agent", "address", cfg.HomeAgent.Address, "home_link", cfg.HomeAgent.Interface,
			"serve", cfg.HomeAgent.Serve, "bulk", cfg.HomeAgent.BulkRegistration, "profile", prof.Name,
			"control", cfg.Control.Socket)
		warnUnauthenticated(log, nil, cfg)
	}
	if cn := cfg.Correspondent; cn.Enabled {
		log.Info("mcoa-ha running as correspondent node", "address", cn.Addresses, "max_lifetime", cn.MaxLifetime,
			"route_optimisation", cnPlane != nil, "profile", prof.Name, "control", cfg.Control.Socket)
	}
	service.OnHUP(ctx, func() { _ = reload("SIGHUP") })
	go func() {
		if err := config.Watch(ctx, path, func() { _ = reload("file changed") }); err != nil && ctx.Err() == nil {
			log.Warn("configuration file not watched", "err", err)
		}
	}()
	go notifyReady(ctx, cfg.Control.Socket) // service.go
	runErr := agent.Run(ctx)
	cancel()
	if err := <-srvErr; err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("control server", "err", err)
	}
	return runErr
}

// warnUnauthenticated writes one WARN line when the home agent accepts
// unauthenticated Binding Updates (allow_unauthenticated, or require_auth
// = false): at start (prev nil) and when a reload turns authentication
// off.
func warnUnauthenticated(log *slog.Logger, prev, cfg *config.HA) {
	if !cfg.HomeAgentRole() || cfg.HomeAgent.RequireAuth {
		return
	}
	if prev != nil && prev.HomeAgentRole() && !prev.HomeAgent.RequireAuth {
		return
	}
	log.Warn("authentication is off (home_agent.allow_unauthenticated): binding updates for home addresses without " +
		"a [[home_agent.mn]] key are accepted unauthenticated, so anyone who reaches this home agent can take their traffic")
}
