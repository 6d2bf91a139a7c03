// Command mcoa-lab builds the lab network of namespaces (a mobile node with
// three access links, three access routers sending Router Advertisements, a
// home agent on its home link and a correspondent node) and runs commands in
// it. See DESIGN.md section 6, "Lab network".
//
//	mcoa-lab up [-daemons] [-vehicle]  build the lab and leave it running (with mcoa-ha and mcoad;
//	                             -vehicle: a host behind the MN as NEMO mobile router)
//	mcoa-lab status              nodes, interfaces, addresses, processes
//	mcoa-lab exec NODE CMD...    run CMD inside NODE (mn ar1 ar2 ar3 core ha cn)
//	mcoa-lab fault NODE blackhole|loss PERCENT|clear
//	                             a path fault on a router (ar1 ar2 ar3 core): its links stay up
//	mcoa-lab down                tear it down
//	mcoa-lab demo [-vehicle|-ro] the live demo (make lab runs all three): its own lab, torn down
//	                             at the end (-vehicle: NEMO mobile router; -ro: route optimisation)
//	mcoa-lab bench [-md FILE]    the lab's performance figures (make bench)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
)

type command struct {
	name, args, help string
	run              func(ctx context.Context, stateFile string, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"up", "[-prefix P] [-daemons [-dataplane B]] [-vehicle] [-ra-min D] [-ra-max D] [-dad] [-no-radvd]", "build the lab and leave it running (-daemons: with mcoa-ha and mcoad, data plane B, default tun; -vehicle: a host behind the MN, a NEMO mobile router)", cmdUp},
		{"down", "[-all]", "tear the lab down (-all: also every stale lab of crashed runs)", cmdDown},
		{"exec", "NODE CMD [ARG...]", "run CMD inside NODE (" + strings.Join(lab.Nodes, " ") + ")", cmdExec},
		{"status", "[-json]", "list nodes, interfaces, addresses, processes and faults", cmdStatus},
		{"fault", "NODE blackhole|loss PERCENT|clear", "a path fault on router NODE (ar1 ar2 ar3 core): drop all, or PERCENT % at random, of what it forwards, both ways, while its links, addresses and RAs stay; clear: none", cmdFault},
		{"demo", "[-prefix P] [-dataplane B] [-vehicle | -ro]", "the live demo (`make lab` runs all three): registration, link loss, returning home; -vehicle: a host behind the MN as mobile router; -ro: route optimisation with a correspondent node", cmdDemo},
		{"bench", "[-md FILE] [-idle D] [-cycles N]", "measure registration latency, fail-over, bulk vs individual, idle cost", cmdBench},
		{"help", "", "this list", cmdHelp},
	}
}

// exitError carries a command's exit status through.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: mcoa-lab [-state FILE] COMMAND [ARGS]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.help)
	}
	tw.Flush()
}

func main() {
	fs := flag.NewFlagSet("mcoa-lab", flag.ExitOnError)
	stateFile := fs.String("state", lab.DefaultStateFile, "state file recording the running lab")
	fs.Usage = func() { usage(os.Stderr); fs.PrintDefaults() }
	fs.Parse(os.Args[1:])
	if fs.NArg() == 0 {
		fs.Usage()
		os.Exit(2)
	}
	name, args := fs.Arg(0), fs.Args()[1:]
	for _, c := range commands {
		if c.name != name {
			continue
		}
		// SIGINT and SIGTERM cancel the context: `up` then tears down what
		// it was building.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := c.run(ctx, *stateFile, args)
		interrupted := ctx.Err() != nil
		stop()
		var code exitError
		switch {
		case err == nil:
		case errors.As(err, &code):
			os.Exit(int(code))
		default:
			fmt.Fprintf(os.Stderr, "mcoa-lab %s: %v\n", name, err)
			if interrupted {
				os.Exit(130)
			}
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "mcoa-lab: unknown command %q\n", name)
	usage(os.Stderr)
	os.Exit(2)
}

func cmdHelp(ctx context.Context, stateFile string, args []string) error {
	usage(os.Stdout)
	return nil
}

func needRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces)")
	}
	return nil
}

// current opens the lab recorded in the state file.
func current(stateFile string) (*lab.Lab, lab.State, error) {
	st, err := lab.LoadState(stateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, st, fmt.Errorf("no lab is up (no %s); run `mcoa-lab up`", stateFile)
	}
	if err != nil {
		return nil, st, err
	}
	l, err := lab.Open(st)
	return l, st, err
}

// upFlags are `mcoa-lab up`'s options.
type upFlags struct {
	prefix                string
	raMin, raMax, timeout time.Duration
	dad, noRadvd, quiet   bool
	daemons, vehicle      bool
	backend               string
}

func parseUpFlags(args []string) (upFlags, error) {
	var f upFlags
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.StringVar(&f.prefix, "prefix", "", "namespace name prefix (default: mcoa + 6 random hex digits + -)")
	fs.DurationVar(&f.raMin, "ra-min", 0, "radvd MinRtrAdvInterval (default 1s)")
	fs.DurationVar(&f.raMax, "ra-max", 0, "radvd MaxRtrAdvInterval (default 3s)")
	fs.BoolVar(&f.dad, "dad", false, "keep Duplicate Address Detection on the MN's interfaces")
	fs.BoolVar(&f.noRadvd, "no-radvd", false, "send no Router Advertisements (the MN gets no care-of addresses)")
	fs.DurationVar(&f.timeout, "timeout", 20*time.Second, "how long to wait for the MN's care-of addresses")
	fs.BoolVar(&f.quiet, "q", false, "print only errors")
	fs.BoolVar(&f.daemons, "daemons", false, "also start mcoa-ha in ha and mcoad in mn (binaries next to mcoa-lab or on PATH)")
	fs.StringVar(&f.backend, "dataplane", "tun", `with -daemons: both daemons' [dataplane] backend ("none": signaling only)`)
	fs.BoolVar(&f.vehicle, "vehicle", false, "a vehicle: node host behind the MN's lan0 on "+lab.MobileNetPrefix.String()+" (with -daemons: mcoad as NEMO mobile router, both data planes tun)")
	if err := fs.Parse(args); err != nil {
		return f, exitError(2)
	}
	if f.vehicle && f.noRadvd {
		return f, fmt.Errorf("-vehicle needs Router Advertisements (drop -no-radvd)")
	}
	if f.daemons && f.noRadvd {
		return f, fmt.Errorf("-daemons needs Router Advertisements (drop -no-radvd)")
	}
	return f, nil
}

func cmdUp(ctx context.Context, stateFile string, args []string) error {
	f, err := parseUpFlags(args)
	if err != nil {
		return err
	}
	if err := needRoot(); err != nil {
		return err
	}
	if st, err := lab.LoadState(stateFile); err == nil {
		if l, err := lab.Open(st); err == nil && l.Exists() {
			return fmt.Errorf("a lab is already up (prefix %s, since %s); run `mcoa-lab down` first",
				st.Prefix, st.Created.Local().Format(time.DateTime))
		}
	}
	level := slog.LevelInfo
	if f.quiet {
		level = slog.LevelError
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	start := time.Now()
	l, err := lab.Up(ctx, &lab.Config{
		Prefix:        f.prefix,
		MinRAInterval: f.raMin,
		MaxRAInterval: f.raMax,
		DAD:           f.dad,
		NoRadvd:       f.noRadvd,
		WaitTimeout:   f.timeout,
		Detach:        true, // radvd outlives this command
		Vehicle:       f.vehicle,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		// Interrupted just as Up finished.
		return errors.Join(err, l.Down())
	}
	if err := lab.SaveState(stateFile, l.State()); err != nil {
		return errors.Join(err, l.Down())
	}
	var ds []*lab.Daemon
	if f.daemons {
		if ds, err = startLabDaemons(ctx, l, f); err != nil {
			return errors.Join(err, l.Down(), os.Remove(stateFile))
		}
	}
	if f.quiet {
		return nil
	}
	if err := printStatus(ctx, os.Stdout, l); err != nil {
		return err
	}
	printTry(l, f, time.Since(start), ds)
	return nil
}

// startLabDaemons starts mcoa-ha and mcoad in the lab `up -daemons` built.
func startLabDaemons(ctx context.Context, l *lab.Lab, f upFlags) ([]*lab.Daemon, error) {
	hc := lab.HAConfig{Backend: f.backend}
	mc := lab.MNConfig{Backend: f.backend}
	if f.vehicle {
		hc = lab.HAConfig{Vehicle: true, Backend: "tun"}
		mc = lab.MNConfig{Vehicle: true, Backend: "tun"}
	}
	ha, err := l.StartHA(ctx, &hc)
	if err != nil {
		return nil, err
	}
	mn, err := l.StartMN(ctx, &mc)
	if err != nil {
		return nil, err
	}
	return []*lab.Daemon{ha, mn}, nil
}

// printTry tells what to try in the lab `up` built in took, and where its
// daemons ds run.
func printTry(l *lab.Lab, f upFlags, took time.Duration, ds []*lab.Daemon) {
	try := fmt.Sprintf("mcoa-lab exec mn ping -c1 %s", lab.HAAddr)
	if f.daemons && f.backend != "none" {
		try = fmt.Sprintf("mcoa-lab exec mn ping -c1 -I %s %s (the home address, through the tunnels)", lab.HoA, lab.CNAddr)
	}
	if f.vehicle {
		try = fmt.Sprintf("mcoa-lab exec host ping -c1 %s", lab.CNAddr)
	}
	fmt.Printf("\nlab %s up in %v. Try: %s; mcoa-lab down\n", l.Prefix, took.Round(time.Millisecond), try)
	for _, d := range ds {
		fmt.Printf("%s runs in %s (pid %d, config %s, log %s): mcoactl -socket %s %s\n",
			filepath.Base(d.Bin), l.NS(d.Node), d.Proc().Pid, d.Config, d.Proc().Log, d.Socket,
			map[string]string{lab.HA: "cache", lab.MN: "bindings"}[d.Node])
	}
}

func cmdDown(ctx context.Context, stateFile string, args []string) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	all := fs.Bool("all", false, "also remove every stale lab (namespaces named mcoa<hex>-NODE or mcoaT<hex>-NODE)")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if err := needRoot(); err != nil {
		return err
	}
	var errs []error
	l, st, err := current(stateFile)
	switch {
	case err == nil:
		if err := l.Down(); err != nil {
			errs = append(errs, err)
		} else {
			fmt.Printf("lab %s down\n", st.Prefix)
			if err := os.Remove(stateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	case !*all:
		return err
	}
	if *all {
		prefixes, err := lab.DownAll()
		for _, p := range prefixes {
			fmt.Printf("removed lab %s\n", p)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func cmdExec(ctx context.Context, stateFile string, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: mcoa-lab exec NODE CMD [ARG...]")
	}
	if err := needRoot(); err != nil {
		return err
	}
	l, _, err := current(stateFile)
	if err != nil {
		return err
	}
	node := args[0]
	if !l.Exists() {
		return fmt.Errorf("the lab %s is gone; run `mcoa-lab down` then `mcoa-lab up`", l.Prefix)
	}
	// No context: the command gets the terminal's signals itself, and this
	// process only relays its exit status.
	cmd, err := l.Command(context.Background(), node, args[1], args[2:]...)
	if err != nil {
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if code := ee.ExitCode(); code >= 0 {
			return exitError(code)
		}
		return exitError(128 + 1)
	}
	return err
}

func cmdStatus(ctx context.Context, stateFile string, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if err := needRoot(); err != nil {
		return err
	}
	l, st, err := current(stateFile)
	if err != nil {
		return err
	}
	faults, ferr := l.Faults()
	if *asJSON {
		nodes, err := l.Status(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return errors.Join(enc.Encode(struct {
			lab.State
			Nodes  []lab.NodeStatus `json:"nodes"`
			Faults []lab.FaultState `json:"faults"`
		}{st, nodes, faults}), ferr)
	}
	fmt.Printf("lab %s (dir %s, up since %s)\n", st.Prefix, st.Dir, st.Created.Local().Format(time.DateTime))
	err = printStatus(ctx, os.Stdout, l)
	printFaults(os.Stdout, faults)
	return errors.Join(err, ferr)
}

func printStatus(ctx context.Context, w io.Writer, l *lab.Lab) error {
	nodes, err := l.Status(ctx)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, n := range nodes {
		if len(n.Links) == 0 {
			fmt.Fprintf(tw, "%s\t(namespace %s missing)\n", n.Node, n.NS)
			continue
		}
		var procs []string
		for _, p := range n.Procs {
			procs = append(procs, fmt.Sprintf("%s[%d]", p.Comm, p.Pid))
		}
		fmt.Fprintf(tw, "%s\t%s\t\t%s\n", n.Node, n.NS, strings.Join(procs, " "))
		for _, k := range n.Links {
			if k.Name == "lo" && len(k.Addrs) <= 1 {
				continue
			}
			state := k.OperState
			if k.NoCarrier() {
				state += ",NO-CARRIER"
			}
			var addrs []string
			for _, a := range k.Addrs {
				s := a.Prefix.String()
				if a.Dynamic {
					s += "(slaac)"
				}
				if a.Tentative {
					s += "(tentative)"
				}
				addrs = append(addrs, s)
			}
			if k.Master != "" {
				addrs = append(addrs, "port of "+k.Master)
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\n", k.Name, state, strings.Join(addrs, " "))
		}
	}
	tw.Flush()
	return err
}
