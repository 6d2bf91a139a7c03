//go:build race

package proto

// raceEnabled: the race detector's instrumentation may allocate, so the
// zero-allocation tests skip under it.
const raceEnabled = true
