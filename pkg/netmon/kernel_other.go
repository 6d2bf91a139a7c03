//go:build !linux

package netmon

import "errors"

func openKernel(*Config) (kernel, error) {
	return nil, errors.New("netmon: watching the kernel needs Linux")
}
