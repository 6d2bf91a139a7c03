//go:build !linux

package lab

import (
	"errors"
	"os/exec"
	"syscall"
)

var errNotLinux = errors.New("lab: network namespaces need Linux")

func setSysctls(string, []sysctl) error        { return errNotLinux }
func startCmd(*exec.Cmd, bool) error           { return errNotLinux }
func signalGroup(int, syscall.Signal) error    { return errNotLinux }
func pidsInNamespaces([]string) ([]int, error) { return nil, nil }
func alive(int) bool                           { return false }
func labProcess(int, string) bool              { return false }

func comm(int) string { return "" }

func mountBPF(string) error                    { return errNotLinux }
func setTxChecksum(string, string, bool) error { return errNotLinux }
func unmountBPF(string)                        {}

func inNS(string, func() error) error { return errNotLinux }

// SetSegmentation needs Linux.
func SetSegmentation(string, string, bool) error { return errNotLinux }
