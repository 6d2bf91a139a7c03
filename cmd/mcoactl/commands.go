package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mcoad/mcoad/pkg/control"
)

// runFunc runs a command with its arguments (options removed).
type runFunc func(c *cli, ctx context.Context, args []string) error

// command is one command of mcoactl, with what its help says.
type command struct {
	name    string
	aliases []string
	args    string // synopsis of the arguments, e.g. "BID N"
	summary string // one line of the overview
	help    string // paragraphs of `mcoactl help NAME`
	daemon  string // who it talks to, for the help; "" nobody
	// setup registers the command's own options on fs and returns the
	// command bound to them; nil for a command with subcommands.
	setup  func(fs *flag.FlagSet) runFunc
	subs   []*command // the first is the default
	parent *command
	stream bool // runs until interrupted: no time limit
	hidden bool // not in the overview
	// raw: the arguments after the command go to it untouched (a command
	// that parses its own options); -h/--help still show printHelp.
	raw       bool
	printHelp func(io.Writer) // instead of help and the options
}

func (c *command) path() string {
	if c.parent != nil {
		return c.parent.path() + " " + c.name
	}
	return c.name
}

// simple is a command without options of its own.
func simple(run runFunc) func(*flag.FlagSet) runFunc {
	return func(*flag.FlagSet) runFunc { return run }
}

// noArgs wraps a command that takes no arguments.
func noArgs(name string, run func(c *cli, ctx context.Context) error) func(*flag.FlagSet) runFunc {
	return simple(func(c *cli, ctx context.Context, args []string) error {
		if len(args) > 0 {
			return usagef("%s takes no arguments (got %q)", name, args[0])
		}
		return run(c, ctx)
	})
}

const (
	talksMN   = control.DaemonMN
	talksHA   = "mcoa-ha (default socket " + control.DefaultHASocket + ")"
	talksBoth = "mcoad, or mcoa-ha with -socket " + control.DefaultHASocket
)

// commands is the table of mcoactl's commands, in the overview's order.
// A command kept in a file of its own (genkey.go) is one entry here.
var commands = []*command{
	{name: "status", summary: "daemon summary and health checks", daemon: talksBoth,
		help: `A summary of the daemon. For mcoad it ends with health checks: what keeps the
bindings from registering or the traffic from flowing (the home agent not
answering, the Mobility Header or IPv6-in-IPv6 filtered on a path, an
interface without IPv6, a data plane the kernel cannot run, authentication
failing), each with what to do. With --json, the status object and its
"diagnoses".

Exit status 1 when nothing is registered with the home agent (and mcoad is
not at home), so that scripts can test it.`,
		setup: noArgs("status", (*cli).status)},
	{name: "bindings", summary: "the Binding Update List", daemon: talksMN,
		help: `The Binding Update List: one line per binding with the home agent (role ha)
and with correspondents (cn): BID, interface, care-of address, priority,
state, path liveness (PATH, RTT and LOSS of its probes), sequence number,
lifetime, expiry and the last Binding Acknowledgement's status. Why a binding
failed (its last error) is listed under the table.`,
		setup: noArgs("bindings", (*cli).bindings)},
	{name: "interfaces", summary: "interfaces, care-of addresses and BIDs", daemon: talksMN,
		help: `The interfaces mcoad sees: index, BID, care-of address, priority, state
(coa, no-address, no-carrier, down, home, excluded, ignored), path liveness,
whether it is on the home link and whether it is metered.`,
		setup: noArgs("interfaces", (*cli).interfaces)},
	{name: "register", args: "[BID...]", summary: "register again now (all bindings without BIDs)", daemon: talksMN,
		help: `Send Binding Updates now, for the given BIDs or, without any, for every
binding (after a change the daemon could not see, or to test the home agent).`,
		setup: simple((*cli).register)},
	{name: "deregister", args: "BID...|--all", summary: "remove bindings", daemon: talksMN,
		help: `De-register the given BIDs (or every binding with --all) with the home agent
and the correspondents; their traffic moves to the other bindings. The
watcher registers them again when their interfaces change.`,
		setup: func(fs *flag.FlagSet) runFunc {
			all := fs.Bool("all", false, "every binding")
			return func(c *cli, ctx context.Context, args []string) error { return c.deregister(ctx, args, *all) }
		}},
	{name: "priority", args: "BID N", summary: "set the priority (0-255) of a BID", daemon: talksMN,
		help: `Set the priority of a BID, 0 to 255, higher preferred (until the interface
rules of a reload set it again). The binding is registered again with it.`,
		setup: simple((*cli).priority)},
	{name: "policy", aliases: []string{"policies"}, args: "list|add|delete", summary: "flow policies", daemon: talksMN,
		help: `Flow policies: which flows prefer which interfaces or BIDs.`,
		subs: []*command{
			{name: "list", summary: "the flow policies, in the order they match", daemon: talksMN,
				help: `The flow policies in the order they match: those of the configuration file,
then those added with 'mcoactl policy add'.`,
				setup: noArgs("policy list", (*cli).policyList)},
			{name: "add", args: "NAME -prefer LIST [OPTIONS]", summary: "add a flow policy (kept across reloads)", daemon: talksMN,
				help: `Add a flow policy after the others (the first that matches a flow wins).
-prefer lists interface globs or BIDs, best first ("eth*,wlan*" or "3,1");
the other options narrow the flows it matches. A NAME that starts with '-'
goes after '--'.

A policy added here is kept across reloads (mcoactl reload, SIGHUP, a saved
configuration file), after the file's policies; a [[policy]] of the same
name in the file replaces it. It is lost when mcoad restarts: put lasting
policies in mcoad.toml.`,
				setup: policyAddSetup},
			{name: "delete", aliases: []string{"del", "rm"}, args: "NAME", summary: "remove a flow policy", daemon: talksMN,
				help: `Remove the named flow policy. A policy of the configuration file comes back
at the next reload; one added with 'mcoactl policy add' does not. A NAME that
starts with '-' goes after '--'.`,
				setup: simple((*cli).policyDelete)},
		}},
	{name: "reload", summary: "re-read the configuration", daemon: talksMN,
		help: `Re-read mcoad's configuration file. A file with errors is refused with them
(file, line and key), exit status 1, and the running configuration stays.`,
		setup: noArgs("reload", (*cli).reload)},
	{name: "hint", args: "up|down|connectivity [IFACE]", summary: "tell mcoad an interface changed", daemon: talksMN,
		help: `Tell mcoad that an interface went up or down or that connectivity changed
(NetworkManager's dispatcher hook does): it looks at the interfaces and
probes the paths now.`,
		setup: simple((*cli).hint)},
	{name: "monitor", summary: "follow state changes, one line per event", daemon: talksBoth, stream: true,
		help: `Follow the daemon's state changes (bindings, interfaces, policies, the
binding cache, reloads), one line per event, until interrupted. With --json,
the events as the API streams them.`,
		setup: noArgs("monitor", (*cli).monitor)},
	{name: "metrics", summary: "Prometheus metrics", daemon: talksBoth,
		help:  `The daemon's metrics in the Prometheus text format.`,
		setup: noArgs("metrics", (*cli).metrics)},
	{name: "cache", summary: "mcoa-ha's binding cache", daemon: talksHA,
		help: `mcoa-ha's binding cache: home address, BID, care-of address, priority,
sequence number, lifetime, expiry and whether it is a home registration or a
correspondent's binding.`,
		setup: noArgs("cache", (*cli).cache)},
	{name: "genkey", args: "[-spi N] [-home-address ADDR]", summary: "make an MN-HA key; print both sides' lines", raw: true, // genkey.go
		setup:     simple(func(c *cli, _ context.Context, args []string) error { return cmdGenkey(args, c.out) }),
		printHelp: func(w io.Writer) { cmdGenkey([]string{"-h"}, w) }},
	{name: "help", args: "[COMMAND [SUBCOMMAND]]", summary: "this text, or a command's help",
		help:  `The overview of mcoactl, or the help of a command.`,
		setup: nil}, // runContext's: it needs no daemon and no client
	{name: "version", summary: "print mcoactl's version",
		help:  `Print mcoactl's version (the same as --version).`,
		setup: nil},
}

func init() {
	for _, c := range commands {
		for _, s := range c.subs {
			s.parent = c
		}
	}
}

const globalOptions = `Options (before or after the command; -x and --x are the same):
  -socket PATH   control socket (default ` + control.DefaultSocket + `;
                 cache: ` + control.DefaultHASocket + `)
  --json         print the API's JSON objects instead of tables; errors too,
                 as {"error": ..., "status": ..., "exit": ...} on stderr
  -h, --help     help; 'mcoactl COMMAND --help' or 'mcoactl help COMMAND'
                 for a command's (never contacts a daemon)
  --version      print mcoactl's version
  --             ends the options: an argument after it may start with '-'
`

const exitStatus = `Exit status: 0 success; 1 error (daemon not running, permission denied,
request refused; for status: nothing registered with the home agent);
2 bad command line.
`

// writeOverview is `mcoactl help`.
func writeOverview(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage: mcoactl [OPTIONS] COMMAND [ARGS]\n\n")
	section := func(title string, pick func(*command) bool) {
		fmt.Fprintf(&b, "%s:\n", title)
		for _, c := range commands {
			if c.hidden || !pick(c) {
				continue
			}
			if len(c.subs) > 0 {
				for _, s := range c.subs {
					overviewLine(&b, s.path()+" "+s.args, s.summary)
				}
				continue
			}
			overviewLine(&b, strings.TrimSpace(c.name+" "+c.args), c.summary)
		}
	}
	section("Commands (mcoad)", func(c *command) bool { return c.daemon == talksMN || c.daemon == talksBoth })
	section("Commands (mcoa-ha)", func(c *command) bool { return c.daemon == talksHA || c.daemon == talksBoth })
	section("Commands (no daemon)", func(c *command) bool { return c.daemon == "" })
	b.WriteString("\n" + globalOptions + "\n" + exitStatus)
	io.WriteString(w, b.String())
}

func overviewLine(b *strings.Builder, left, summary string) {
	left = strings.TrimSpace(left)
	if len(left) > 30 {
		fmt.Fprintf(b, "  %s\n  %-30s %s\n", left, "", summary)
		return
	}
	fmt.Fprintf(b, "  %-30s %s\n", left, summary)
}

// usageLine is a command's synopsis.
func usageLine(c *command) string {
	opts := ""
	if c.setup != nil {
		fs := newFlagSet(c.path())
		c.setup(fs)
		n := 0
		fs.VisitAll(func(f *flag.Flag) { n++ })
		if n > 0 && !strings.Contains(c.args, "OPTIONS") {
			opts = " [OPTIONS]"
		}
	}
	return strings.TrimRight("usage: mcoactl "+c.path()+opts+" "+c.args, " ") + "\n"
}

// writeHelp is `mcoactl help COMMAND` and `mcoactl COMMAND --help`.
func writeHelp(w io.Writer, c *command) {
	if c.printHelp != nil {
		c.printHelp(w)
		return
	}
	var b strings.Builder
	b.WriteString(usageLine(c))
	b.WriteString("\n" + c.help + "\n")
	if len(c.subs) > 0 {
		b.WriteString("\nSubcommands:\n")
		for _, s := range c.subs {
			overviewLine(&b, s.name+" "+s.args, s.summary)
		}
		fmt.Fprintf(&b, "\n'mcoactl help %s SUBCOMMAND' tells more; without one, %s %s.\n", c.name, c.name, c.subs[0].name)
	}
	if c.setup != nil {
		fs := newFlagSet(c.path())
		c.setup(fs)
		var opts []string
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			left := "--" + f.Name
			if name != "" {
				left = "-" + f.Name + " " + name
			}
			opts = append(opts, fmt.Sprintf("  %-20s %s\n", left, usage))
		})
		if len(opts) > 0 {
			b.WriteString("\nOptions:\n" + strings.Join(opts, ""))
		}
	}
	if c.daemon != "" {
		b.WriteString("\nTalks to " + c.daemon + ".\n")
	} else {
		b.WriteString("\nNeeds no daemon.\n")
	}
	b.WriteString("Options of every command: -socket PATH, --json, -h/--help (mcoactl help).\n")
	io.WriteString(w, b.String())
}

// helpCommand is `mcoactl help [COMMAND [SUBCOMMAND]]`.
func helpCommand(w io.Writer, args []string) error {
	if len(args) == 0 {
		writeOverview(w)
		return nil
	}
	c := lookup(commands, args[0])
	if c == nil {
		return usagef("help: unknown command %q", args[0])
	}
	if len(args) > 1 {
		if len(c.subs) == 0 {
			return usagef("help: %s has no subcommands", c.name)
		}
		s := lookup(c.subs, args[1])
		if s == nil {
			return usagef("help: %s: unknown subcommand %q (want %s)", c.name, args[1], subNames(c))
		}
		c = s
		args = args[1:]
	}
	if len(args) > 1 {
		return usagef("help: want COMMAND [SUBCOMMAND]")
	}
	writeHelp(w, c)
	return nil
}

func policyAddSetup(fs *flag.FlagSet) runFunc {
	var p control.Policy
	fs.StringVar(&p.Name, "name", "", "the policy's `NAME` (or give it as the first argument)")
	prefer := fs.String("prefer", "", "required: a comma-separated `LIST` of interface globs or BIDs, best first")
	fs.StringVar(&p.Protocol, "protocol", "", "protocol `P`: tcp, udp, icmpv6 or any")
	fs.StringVar(&p.SrcPrefix, "src-prefix", "", "source `PREFIX` (a mobile network, or the home address)")
	fs.StringVar(&p.DstPrefix, "dst-prefix", "", "destination `PREFIX`")
	fs.StringVar(&p.SrcPort, "src-port", "", "source port or range `R`, e.g. 5060-5061 (tcp, udp)")
	fs.StringVar(&p.DstPort, "dst-port", "", "destination port or range `R` (tcp, udp)")
	fs.StringVar(&p.User, "user", "", "local traffic of `USER` (name or uid)")
	fs.StringVar(&p.Cgroup, "cgroup", "", "local traffic of the cgroup v2 `PATH`")
	return func(c *cli, ctx context.Context, args []string) error {
		if len(args) > 0 {
			if p.Name != "" {
				return usagef("policy add: NAME given twice (%q and -name %q)", args[0], p.Name)
			}
			p.Name, args = args[0], args[1:]
		}
		if len(args) > 0 {
			return usagef("policy add: unexpected %q", args[0])
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
		return c.policyAdd(ctx, p)
	}
}

// parseBIDs reads BIDs (1-65535).
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

// errSilent ends mcoactl with an exit code and no message: the output
// said it (status with nothing registered).
type errSilent struct{ code int }

func (e errSilent) Error() string { return "exit " + strconv.Itoa(e.code) }

func isSilent(err error) (int, bool) {
	var s errSilent
	if errors.As(err, &s) {
		return s.code, true
	}
	return 0, false
}
