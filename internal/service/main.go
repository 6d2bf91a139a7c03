package service

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/mcoad/mcoad/pkg/config"
)

// Flags are the command line flags both daemons take.
type Flags struct {
	Config  string // -config: the configuration file
	Check   string // -check-config: check this file and exit
	Version bool   // -version
	Cleanup bool   // -cleanup: remove what a killed process left, and exit
}

// NewFlags returns a flag set for the daemon name with the shared flags
// registered; the daemon adds its own before parsing. Errors and usage
// go to stderr.
func NewFlags(name, defaultConfig string, stderr io.Writer) (*flag.FlagSet, *Flags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := new(Flags)
	fs.StringVar(&f.Config, "config", defaultConfig, "configuration file")
	fs.StringVar(&f.Check, "check-config", "", "check this configuration file, print its errors and exit")
	fs.BoolVar(&f.Version, "version", false, "print the version and exit")
	fs.BoolVar(&f.Cleanup, "cleanup", false, "remove what a "+name+" that did not stop cleanly left in the kernel, and exit")
	return fs, f
}

// Command is what the command line gives a daemon's New (the first fields
// of internal/mn's and internal/ha's Deps).
type Command struct {
	ConfigPath string         // the file Reload reads
	Version    string         // in the status
	Logger     *slog.Logger   // nil: slog.Default()
	Level      *slog.LevelVar // the log level a Reload sets; nil: none
}

// Program is one daemon as Main runs it; C is its configuration type.
type Program[C any] struct {
	Name, Version string
	Load          func(path string) (C, error)
	Log           func(C) config.Log
	// Cleanup serves -cleanup, given -config's path (a file that does not
	// load must not stop it).
	Cleanup func(path string) error
	// New builds the daemon (New(cfg, deps) of internal/mn or
	// internal/ha).
	New         func(cfg C, cmd Command) (Daemon, error)
	WatchConfig bool
	Stdout      io.Writer
	Stderr      io.Writer
}

// Main runs the daemon as its command line f says and returns the exit
// status: -version, -cleanup and -check-config, else load the file (its
// errors on stderr, so that `systemctl status` shows them), set up
// logging and Run until SIGTERM or SIGINT.
func Main[C any](f *Flags, p Program[C]) int {
	switch {
	case f.Version:
		fmt.Fprintln(p.Stdout, p.Name, p.Version)
		return 0
	case f.Cleanup:
		if err := p.Cleanup(f.Config); err != nil {
			fmt.Fprintf(p.Stderr, "%s: cleanup: %v\n", p.Name, err)
			return 1
		}
		return 0
	case f.Check != "":
		// The file named, whatever -config says.
		if _, err := p.Load(f.Check); err != nil {
			fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
			return 1
		}
		fmt.Fprintf(p.Stdout, "%s: ok\n", f.Check)
		return 0
	}
	cfg, err := p.Load(f.Config)
	if err != nil {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
		return 1
	}
	log, level := NewLogger(p.Log(cfg))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d, err := p.New(cfg, Command{ConfigPath: f.Config, Version: p.Version, Logger: log, Level: level})
	if err == nil {
		err = Run(ctx, d, Options{ConfigPath: f.Config, WatchConfig: p.WatchConfig, Logger: log})
	}
	if err != nil {
		log.Error(p.Name+" stopped", "err", err)
		return 1
	}
	return 0
}
