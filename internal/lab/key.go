package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// MNHASPI is the SPI of the lab's RFC 4285 MN-HA security association.
const MNHASPI = 1000

// MNHAKeyFile returns the file holding this lab's MN-HA key (hex, mode
// 0600, in Dir), made from crypto/rand on first use: each lab has its own,
// and the daemons' configurations name the file.
func (l *Lab) MNHAKeyFile() (string, error) {
	path := filepath.Join(l.Dir, "mnha.key")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("lab: MN-HA key: %w", err)
	}
	// Written aside and linked into place: a concurrent first use keeps
	// whichever key got there first.
	tmp, err := os.CreateTemp(l.Dir, "mnha.key.*")
	if err != nil {
		return "", fmt.Errorf("lab: MN-HA key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(key) + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		if err = os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
			err = nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("lab: MN-HA key: %w", err)
	}
	return path, nil
}

// MNHAKey returns this lab's MN-HA key (see MNHAKeyFile).
func (l *Lab) MNHAKey() ([]byte, error) {
	path, err := l.MNHAKeyFile()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lab: MN-HA key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("lab: MN-HA key %s: %w", path, err)
	}
	return key, nil
}
