package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mcoad/mcoad/pkg/control"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// callTimeout bounds every command but monitor.
const callTimeout = 30 * time.Second

const usage = `usage: mcoactl [-socket PATH] [--json] COMMAND [ARGS]

Commands (mcoad):
  status                         daemon summary
  bindings                       the Binding Update List
  interfaces                     interfaces, care-of addresses and BIDs
  register [BID...]              register again now (all bindings without BIDs)
  deregister BID...|--all        remove bindings
  priority BID N                 set the priority (0-255) of a BID
  policy list                    flow policies
  policy add NAME -prefer LIST [-protocol P] [-src-port R] [-dst-port R]
             [-dst-prefix PFX] [-user U] [-cgroup PATH]
  policy delete NAME
  reload                         re-read the configuration
  hint up|down|connectivity [IFACE]
  monitor                        follow state changes, one line per event
  metrics                        Prometheus metrics
Commands (mcoa-ha):
  cache                          the binding cache (default socket ` + control.DefaultHASocket + `)
  status, monitor, metrics       as above, with -socket ` + control.DefaultHASocket + `

Options:
  -socket PATH   control socket (default ` + control.DefaultSocket + `)
  --json         print the API's JSON objects instead of tables
`

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// run is mcoactl without signals, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcoactl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := fs.String("socket", control.DefaultSocket, "control socket")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "mcoactl: %v\n%s", err, usage)
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if cmd == "help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	socketSet := false
	fs.Visit(func(f *flag.Flag) { socketSet = socketSet || f.Name == "socket" })
	if cmd == "cache" && !socketSet {
		*socket = control.DefaultHASocket
	}

	c := &cli{client: control.NewClient(*socket), json: *asJSON, out: stdout}
	var err error
	if cmd == "monitor" {
		err = c.monitor(ctx, rest)
	} else {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err = c.command(cctx, cmd, rest)
		cancel()
	}
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mcoactl: %v\n%s", err, usage)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "mcoactl: %v\n", err)
		return exitError
	}
}

type cli struct {
	client *control.Client
	json   bool
	out    io.Writer
}

// emit writes v as indented JSON, or with render for people.
func emit[T any](c *cli, v T, render func(io.Writer, T) error) error {
	if c.json {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.out, "%s\n", b)
		return err
	}
	return render(c.out, v)
}

// done reports a successful mutating call: the API's OK object with --json,
// a sentence otherwise.
func (c *cli) done(msg string) error {
	return emit(c, control.OK{OK: true}, func(w io.Writer, _ control.OK) error {
		_, err := fmt.Fprintln(w, msg)
		return err
	})
}

func noArgs(cmd string, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments", cmd)
	}
	return nil
}

func (c *cli) command(ctx context.Context, cmd string, args []string) error {
	cl := c.client
	switch cmd {
	case "status":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		s, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		return emit(c, s, writeStatus)
	case "bindings":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		bs, err := cl.Bindings(ctx)
		if err != nil {
			return err
		}
		return emit(c, bs, writeBindings)
	case "interfaces":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		is, err := cl.Interfaces(ctx)
		if err != nil {
			return err
		}
		return emit(c, is, writeInterfaces)
	case "cache":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		cs, err := cl.Cache(ctx)
		if err != nil {
			return err
		}
		return emit(c, cs, writeCache)
	case "metrics":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		m, err := cl.Metrics(ctx)
		if err != nil {
			return err
		}
		_, err = io.WriteString(c.out, m)
		return err
	case "register":
		bids, err := parseBIDs(args)
		if err != nil {
			return err
		}
		if err := cl.Register(ctx, bids...); err != nil {
			return err
		}
		return c.done("registration started for " + bidList(bids, len(bids) == 0))
	case "deregister":
		fs := flag.NewFlagSet("deregister", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		all := fs.Bool("all", false, "all bindings")
		if err := fs.Parse(args); err != nil {
			return usagef("deregister: %v", err)
		}
		bids, err := parseBIDs(fs.Args())
		if err != nil {
			return err
		}
		if (len(bids) > 0) == *all {
			return usagef("deregister: give BIDs or --all")
		}
		if err := cl.Deregister(ctx, bids, *all); err != nil {
			return err
		}
		return c.done("de-registration started for " + bidList(bids, *all))
	case "priority":
		if len(args) != 2 {
			return usagef("priority: want BID N")
		}
		bids, err := parseBIDs(args[:1])
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(args[1], 10, 8)
		if err != nil {
			return usagef("priority: %q is not a priority (0-255)", args[1])
		}
		if err := cl.SetPriority(ctx, bids[0], uint8(n)); err != nil {
			return err
		}
		return c.done(fmt.Sprintf("BID %d: priority %d", bids[0], n))
	case "policy", "policies":
		return c.policy(ctx, args)
	case "reload":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		if err := cl.Reload(ctx); err != nil {
			return err
		}
		return c.done("configuration reloaded")
	case "hint":
		if len(args) < 1 || len(args) > 2 {
			return usagef("hint: want up|down|connectivity [IFACE]")
		}
		kind, iface := args[0], ""
		switch kind {
		case control.HintUp, control.HintDown, control.HintConnectivity:
		default:
			return usagef("hint: unknown kind %q (want up, down or connectivity)", kind)
		}
		if len(args) == 2 {
			iface = args[1]
		}
		if err := cl.Hint(ctx, kind, iface); err != nil {
			return err
		}
		return c.done(strings.TrimSpace("hint sent: " + kind + " " + iface))
	}
	return usagef("unknown command %q", cmd)
}

func (c *cli) policy(ctx context.Context, args []string) error {
	sub := "list"
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list":
		if err := noArgs("policy list", args); err != nil {
			return err
		}
		ps, err := c.client.Policies(ctx)
		if err != nil {
			return err
		}
		return emit(c, ps, writePolicies)
	case "delete", "del", "rm":
		if len(args) != 1 {
			return usagef("policy delete: want NAME")
		}
		if err := c.client.DeletePolicy(ctx, args[0]); err != nil {
			return err
		}
		return c.done("policy " + args[0] + " deleted")
	case "add":
		var p control.Policy
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			p.Name, args = args[0], args[1:]
		}
		fs := flag.NewFlagSet("policy add", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.StringVar(&p.Name, "name", p.Name, "")
		fs.StringVar(&p.Protocol, "protocol", "", "")
		fs.StringVar(&p.SrcPort, "src-port", "", "")
		fs.StringVar(&p.DstPort, "dst-port", "", "")
		fs.StringVar(&p.DstPrefix, "dst-prefix", "", "")
		fs.StringVar(&p.User, "user", "", "")
		fs.StringVar(&p.Cgroup, "cgroup", "", "")
		prefer := fs.String("prefer", "", "")
		if err := fs.Parse(args); err != nil {
			return usagef("policy add: %v", err)
		}
		if fs.NArg() > 0 {
			return usagef("policy add: unexpected %q", fs.Arg(0))
		}
		if p.Name == "" {
			return usagef("policy add: no NAME")
		}
		for _, s := range strings.Split(*prefer, ",") {
			if s = strings.TrimSpace(s); s != "" {
				p.Prefer = append(p.Prefer, s)
			}
		}
		if len(p.Prefer) == 0 {
			return usagef("policy add: -prefer is required (e.g. -prefer 'eth*,wlan*')")
		}
		if err := c.client.AddPolicy(ctx, p); err != nil {
			return err
		}
		if c.json {
			return emit(c, p, nil)
		}
		return c.done("policy " + p.Name + " added")
	}
	return usagef("policy: unknown subcommand %q (want list, add or delete)", sub)
}

func (c *cli) monitor(ctx context.Context, args []string) error {
	if err := noArgs("monitor", args); err != nil {
		return err
	}
	st, err := c.client.Events(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	for {
		ev, err := st.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: a normal way to stop
			}
			if errors.Is(err, io.EOF) {
				return errors.New("the daemon ended the event stream")
			}
			return err
		}
		if c.json {
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.out, "%s\n", b)
			if err != nil {
				return err
			}
			continue
		}
		if _, err := fmt.Fprintln(c.out, formatEvent(ev, time.Local)); err != nil {
			return err
		}
	}
}

func parseBIDs(args []string) ([]uint16, error) {
	var bids []uint16
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 16)
		if err != nil || n == 0 {
			return nil, usagef("%q is not a BID (1-65535)", a)
		}
		bids = append(bids, uint16(n))
	}
	return bids, nil
}

func bidList(bids []uint16, all bool) string {
	if all {
		return "all bindings"
	}
	s := make([]string, len(bids))
	for i, b := range bids {
		s[i] = strconv.Itoa(int(b))
	}
	if len(s) == 1 {
		return "BID " + s[0]
	}
	return "BIDs " + strings.Join(s, ", ")
}
