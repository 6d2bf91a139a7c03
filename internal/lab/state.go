package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// DefaultStateFile is where `mcoa-lab up` records the lab it built.
const DefaultStateFile = "/run/mcoa-lab/current.json"

// State is what a later process needs to reach a lab: `mcoa-lab up` saves it,
// `mcoa-lab down`, `exec` and `status` load it.
type State struct {
	Prefix  string    `json:"prefix"`
	Dir     string    `json:"dir"`
	OwnDir  bool      `json:"own_dir"` // Dir was made by the lab and goes with it
	Created time.Time `json:"created"`
}

// State returns what Open needs to reach this lab from another process.
func (l *Lab) State() State {
	return State{Prefix: l.Prefix, Dir: l.Dir, OwnDir: l.ownDir, Created: time.Now().UTC()}
}

// Open returns a handle on a lab built by another process. Its Down kills
// the lab's processes through their pid files and namespaces.
func Open(st State) (*Lab, error) {
	if err := ValidatePrefix(st.Prefix); err != nil {
		return nil, err
	}
	c, err := (&Config{Prefix: st.Prefix}).withDefaults()
	if err != nil {
		return nil, err
	}
	return &Lab{Prefix: st.Prefix, Dir: st.Dir, ownDir: st.OwnDir, cfg: c}, nil
}

// Exists reports whether any of the lab's namespaces exists.
func (l *Lab) Exists() bool {
	for _, n := range allNodes {
		if nsExists(l.NS(n)) {
			return true
		}
	}
	return false
}

// SaveState writes st to path atomically, creating its directory.
func SaveState(path string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".state-*")
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("lab: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// LoadState reads a state file written by SaveState. A missing file is an
// error that wraps os.ErrNotExist.
func LoadState(path string) (State, error) {
	var st State
	b, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("lab: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("lab: state file %s: %w", path, err)
	}
	if err := ValidatePrefix(st.Prefix); err != nil {
		return st, fmt.Errorf("lab: state file %s: %w", path, err)
	}
	return st, nil
}
