//go:build !linux

package service

import "os"

func fileID(*os.File) (dev, ino string, ok bool) { return "", "", false }
