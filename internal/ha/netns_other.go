//go:build !linux

package ha

// netNS: no network namespaces to tell apart.
func netNS() string { return "" }
