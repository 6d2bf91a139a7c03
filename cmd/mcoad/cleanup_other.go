//go:build !linux

package main

import "github.com/mcoad/mcoad/pkg/config"

// cleanupKernel: only Linux has anything to clean up.
func cleanupKernel(config.Dataplane) error { return nil }
