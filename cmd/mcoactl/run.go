package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mcoad/mcoad/pkg/control"
)

// Exit codes (mcoactl(8), docs/contracts.md).
const (
	exitOK    = 0
	exitError = 1 // the daemon is not running, refused, failed; status: nothing registered
	exitUsage = 2
)

// callTimeout bounds every command but monitor.
const callTimeout = 30 * time.Second

// run is mcoactl without signals, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	inv, err := parseLine(args)
	asJSON := inv.g.json || jsonAsked(args)
	fail := func(err error) int { return report(stderr, err, inv.cmd, asJSON) }
	if helpAsked(args) || inv.g.help {
		// Help wins, and never reaches a daemon.
		switch {
		case inv.cmd != nil && inv.cmd.name == "help" && err == nil && len(inv.args) > 0:
			if err := helpCommand(stdout, inv.args); err != nil {
				return fail(err)
			}
		case inv.cmd != nil:
			writeHelp(stdout, inv.cmd)
		case err != nil:
			return fail(err)
		default:
			writeOverview(stdout)
		}
		return exitOK
	}
	if err != nil {
		return fail(err)
	}
	if inv.g.version || inv.cmd != nil && inv.cmd.name == "version" {
		if inv.cmd != nil && inv.cmd.name == "version" && len(inv.args) > 0 {
			return fail(usagef("version takes no arguments"))
		}
		printVersion(stdout, inv.g.json)
		return exitOK
	}
	if inv.cmd == nil {
		if asJSON {
			return fail(usagef("no command"))
		}
		writeOverview(stderr)
		return exitUsage
	}
	if inv.cmd.name == "help" {
		if err := helpCommand(stdout, inv.args); err != nil {
			return fail(err)
		}
		return exitOK
	}
	socket := inv.g.socket
	if inv.cmd.name == "cache" && !inv.socketSet {
		socket = control.DefaultHASocket
	}
	c := &cli{client: control.NewClient(socket), json: inv.g.json, out: stdout}
	if !inv.cmd.stream {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	if err := inv.run(c, ctx, inv.args); err != nil {
		return fail(err)
	}
	return exitOK
}

// jsonError is an error under --json, on stderr.
type jsonError struct {
	Error string `json:"error"`
	// Status is the daemon's HTTP status when it answered (400 refused,
	// 403 forbidden, 404 not found, 409 conflict, 5xx failed).
	Status int `json:"status,omitempty"`
	Exit   int `json:"exit"`
}

// report writes err for people (or as JSON) and returns the exit code.
func report(w io.Writer, err error, cmd *command, asJSON bool) int {
	if code, ok := isSilent(err); ok {
		return code
	}
	code := exitError
	var ue usageError
	if errors.As(err, &ue) {
		code = exitUsage
	}
	if asJSON {
		je := jsonError{Error: err.Error(), Exit: code}
		var ae *control.APIError
		if errors.As(err, &ae) {
			je.Status = ae.Code
		}
		b, _ := json.Marshal(je)
		fmt.Fprintf(w, "%s\n", b)
		return code
	}
	fmt.Fprintf(w, "mcoactl: %v\n", err)
	if code == exitUsage {
		if cmd == nil || cmd.name == "help" {
			writeOverview(w)
		} else {
			fmt.Fprintf(w, "%s'mcoactl help %s' tells more.\n", usageLine(cmd), cmd.path())
		}
	}
	return code
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

func (c *cli) bindings(ctx context.Context) error {
	bs, err := c.client.Bindings(ctx)
	if err != nil {
		return err
	}
	return emit(c, bs, writeBindings)
}

func (c *cli) interfaces(ctx context.Context) error {
	is, err := c.client.Interfaces(ctx)
	if err != nil {
		return err
	}
	return emit(c, is, writeInterfaces)
}

func (c *cli) cache(ctx context.Context) error {
	cs, err := c.client.Cache(ctx)
	if err != nil {
		return err
	}
	return emit(c, cs, writeCache)
}

func (c *cli) metrics(ctx context.Context) error {
	m, err := c.client.Metrics(ctx)
	if err != nil {
		return err
	}
	_, err = io.WriteString(c.out, m)
	return err
}

func (c *cli) register(ctx context.Context, args []string) error {
	bids, err := parseBIDs(args)
	if err != nil {
		return err
	}
	if err := c.client.Register(ctx, bids...); err != nil {
		return err
	}
	return c.done("registration started for " + bidList(bids, len(bids) == 0))
}

func (c *cli) deregister(ctx context.Context, args []string, all bool) error {
	bids, err := parseBIDs(args)
	if err != nil {
		return err
	}
	if (len(bids) > 0) == all {
		return usagef("deregister: give BIDs or --all")
	}
	if err := c.client.Deregister(ctx, bids, all); err != nil {
		return err
	}
	return c.done("de-registration started for " + bidList(bids, all))
}

func (c *cli) priority(ctx context.Context, args []string) error {
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
	if err := c.client.SetPriority(ctx, bids[0], uint8(n)); err != nil {
		return err
	}
	return c.done(fmt.Sprintf("BID %d: priority %d", bids[0], n))
}

func (c *cli) reload(ctx context.Context) error {
	if err := c.client.Reload(ctx); err != nil {
		return err
	}
	return c.done("configuration reloaded")
}

func (c *cli) hint(ctx context.Context, args []string) error {
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
	if err := c.client.Hint(ctx, kind, iface); err != nil {
		return err
	}
	return c.done(strings.TrimSpace("hint sent: " + kind + " " + iface))
}

func (c *cli) policyList(ctx context.Context) error {
	ps, err := c.client.Policies(ctx)
	if err != nil {
		return err
	}
	return emit(c, ps, writePolicies)
}

func (c *cli) policyDelete(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return usagef("policy delete: want NAME")
	}
	if err := c.client.DeletePolicy(ctx, args[0]); err != nil {
		return err
	}
	return c.done("policy " + args[0] + " deleted")
}

func (c *cli) policyAdd(ctx context.Context, p control.Policy) error {
	if err := c.client.AddPolicy(ctx, p); err != nil {
		return err
	}
	if c.json {
		return emit(c, p, nil)
	}
	return c.done("policy " + p.Name + " added (kept across reloads, not across a restart)")
}

func (c *cli) monitor(ctx context.Context) error {
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
