package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mcoad/mcoad/pkg/control"
)

// The command line: global options and a command's own may come before or
// after the command and its arguments (`mcoactl bindings --json`, as
// tailscale and git take them); `--` ends the options, so that a policy
// name starting with '-' can be given. -x and --x are the same option.

// globals are the options every command takes.
type globals struct {
	socket  string
	json    bool
	help    bool
	version bool
}

// register adds the options to fs with their values so far as defaults:
// the line is parsed in parts (before the command, after it).
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.socket, "socket", g.socket, "control socket `PATH`")
	fs.BoolVar(&g.json, "json", g.json, "print JSON")
	fs.BoolVar(&g.help, "h", g.help, "help")
	fs.BoolVar(&g.help, "help", g.help, "help")
	fs.BoolVar(&g.version, "version", g.version, "print the version")
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

type boolFlag interface{ IsBoolFlag() bool }

// parseArgs sets the options of fs found anywhere in args and returns the
// other arguments in order. With untilWord it stops at the first argument
// that is not an option (a command's name) and returns it and the rest.
func parseArgs(fs *flag.FlagSet, args []string, untilWord bool) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if untilWord {
				return args[i:], nil // the command sees the "--"
			}
			return append(rest, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			if untilWord {
				return args[i:], nil
			}
			rest = append(rest, a)
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		name, val, hasVal := strings.Cut(name, "=")
		f := fs.Lookup(name)
		if f == nil || name == "" || strings.HasPrefix(name, "-") {
			return nil, usagef("unknown option %s", a)
		}
		if b, ok := f.Value.(boolFlag); ok && b.IsBoolFlag() {
			if !hasVal {
				val = "true"
			}
		} else if !hasVal {
			if i+1 >= len(args) {
				return nil, usagef("option %s needs a value", a)
			}
			i++
			val = args[i]
		}
		if err := fs.Set(name, val); err != nil {
			return nil, usagef("option %s: bad value %q", a, val)
		}
	}
	return rest, nil
}

// helpAsked reports whether -h, -help or --help comes before any "--":
// help wins over everything else on the line and never reaches a daemon.
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "--h", "-help", "--help":
			return true
		}
	}
	return false
}

// jsonAsked is --json for the error of a command line that did not parse.
func jsonAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-json", "--json", "-json=true", "--json=true", "-json=1", "--json=1":
			return true
		}
	}
	return false
}

// invocation is a parsed command line.
type invocation struct {
	g    globals
	cmd  *command // nil: no command (global help or version)
	run  runFunc  // cmd's, bound to its options
	args []string // the command's arguments, options removed
	// socketSet: -socket was given (cache changes the default).
	socketSet bool
}

// parseLine finds the command (and a policy's subcommand) and parses every
// option on the line. On a usage error it returns what it found so far,
// for the error's help.
func parseLine(args []string) (*invocation, error) {
	inv := &invocation{g: globals{socket: control.DefaultSocket}}
	gfs := newFlagSet("mcoactl")
	inv.g.register(gfs)
	rest, err := parseArgs(gfs, args, true)
	if err != nil {
		return inv, err
	}
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
		if len(rest) == 0 {
			return inv, nil
		}
	}
	if len(rest) == 0 {
		return inv, nil
	}
	cmd := lookup(commands, rest[0])
	if cmd == nil {
		return inv, usagef("unknown command %q", rest[0])
	}
	inv.cmd, rest = cmd, rest[1:]
	for len(cmd.subs) > 0 {
		// Options may come between the command and its subcommand.
		sfs := newFlagSet(cmd.name)
		inv.g.register(sfs)
		if rest, err = parseArgs(sfs, rest, true); err != nil {
			return inv, err
		}
		sfs.Visit(func(f *flag.Flag) { inv.socketSet = inv.socketSet || f.Name == "socket" })
		if len(rest) > 0 && rest[0] == "--" {
			rest = rest[1:]
		}
		if len(rest) == 0 && inv.g.help {
			break // the help of the command, not of its default
		}
		if len(rest) == 0 {
			cmd = cmd.subs[0] // the first is the default: policy = policy list
		} else if sub := lookup(cmd.subs, rest[0]); sub != nil {
			cmd, rest = sub, rest[1:]
		} else {
			return inv, usagef("%s: unknown subcommand %q (want %s)", cmd.name, rest[0], subNames(cmd))
		}
		inv.cmd = cmd
	}
	if cmd.raw {
		inv.run, inv.args = cmd.setup(nil), rest
		return inv, nil
	}
	fs := newFlagSet(cmd.path())
	inv.g.register(fs)
	if cmd.setup != nil {
		inv.run = cmd.setup(fs)
	}
	if inv.args, err = parseArgs(fs, rest, false); err != nil {
		return inv, err
	}
	fs.Visit(func(f *flag.Flag) { inv.socketSet = inv.socketSet || f.Name == "socket" })
	gfs.Visit(func(f *flag.Flag) { inv.socketSet = inv.socketSet || f.Name == "socket" })
	if inv.g.socket == "" {
		return inv, usagef("-socket: empty path")
	}
	return inv, nil
}

func lookup(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
		for _, a := range c.aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

func subNames(c *command) string {
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}
