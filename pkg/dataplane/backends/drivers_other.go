//go:build !linux

package backends

import "github.com/mcoad/mcoad/pkg/dataplane"

// drivers is empty off Linux: only "none" runs.
var drivers []dataplane.Driver
