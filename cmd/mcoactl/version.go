package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
)

// version is set by the package build (-ldflags "-X main.version=..."), as
// for mcoad and mcoa-ha; a plain `go build` says what Go recorded.
var version = "dev"

func versionString() string {
	if version != "dev" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return version
	}
	return version + " (" + rev + dirty + ")"
}

func printVersion(w io.Writer, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		}{"mcoactl", versionString()})
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintf(w, "mcoactl %s\n", versionString())
}
