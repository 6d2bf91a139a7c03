// Command mcoa-ha is the home agent of mcoad's Multiple Care-of Addresses
// registration (draft-ietf-monami6-multiplecoa-00 section 6): it keeps a
// binding cache of several care-of addresses per home address, answers
// Binding Updates, defends the home addresses on the home link, and serves
// its cache on the control socket (`mcoactl cache`). With [correspondent]
// enabled it is also, or only (no [home_agent]), a correspondent node.
package main

import (
	"io"
	"os"

	"github.com/mcoad/mcoad/internal/ha"
	"github.com/mcoad/mcoad/internal/service"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/control"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int { return runWith(args, os.Stderr) }

// runWith is run with the standard error stream given (tests read it).
func runWith(args []string, stderr io.Writer) int {
	fs, f := service.NewFlags(control.DaemonHA, config.DefaultHAPath, stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return service.Main(f, service.Program[*config.HA]{
		Name: control.DaemonHA, Version: version,
		Load:    config.LoadHA,
		Log:     func(c *config.HA) config.Log { return c.Log },
		Cleanup: cleanup,
		New: func(cfg *config.HA, cmd service.Command) (service.Daemon, error) {
			return ha.New(cfg, ha.Deps{Command: cmd})
		},
		WatchConfig: true,
		Stdout:      os.Stdout, Stderr: stderr,
	})
}

// cleanup serves -cleanup with the home link and prefixes of the file when
// it loads: cleaning up must not depend on a good file (cleanup.go).
func cleanup(path string) error {
	cfg, _ := config.LoadHA(path)
	return cleanupKernel(cfg)
}
