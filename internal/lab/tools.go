package lab

import (
	"errors"
	"fmt"
	"os/exec"
)

// toolPackages names the Debian package of each tool the lab runs.
var toolPackages = map[string]string{
	"ip":    "iproute2",
	"radvd": "radvd",
	"ping":  "iputils-ping",
}

// MissingToolError is a program the lab needs that is not on PATH.
type MissingToolError struct {
	Tool    string
	Package string // Debian package providing it
	Err     error
}

func (e *MissingToolError) Error() string {
	return fmt.Sprintf("lab: %s not found on PATH; install the Debian package %q (apt-get install %s)", e.Tool, e.Package, e.Package)
}

func (e *MissingToolError) Unwrap() error { return e.Err }

// CheckTools returns a *MissingToolError for each tool not on PATH.
func CheckTools(tools ...string) error {
	var errs []error
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			pkg := toolPackages[t]
			if pkg == "" {
				pkg = t
			}
			errs = append(errs, &MissingToolError{Tool: t, Package: pkg, Err: err})
		}
	}
	return errors.Join(errs...)
}
