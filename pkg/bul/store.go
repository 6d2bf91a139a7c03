package bul

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// PersistentState is what the engine keeps across restarts.
type PersistentState struct {
	// Sequences maps a peer address to a sequence number at or after the
	// last one sent to it; the engine continues after it, so that a
	// restart does not draw a storm of status 135.
	Sequences map[string]uint16 `json:"sequences"`
}

// Store persists the engine's PersistentState.
type Store interface {
	Load() (PersistentState, error)
	Save(PersistentState) error
}

// MemStore is a Store in memory (tests, or no state_dir).
type MemStore struct {
	mu sync.Mutex
	st PersistentState
	// Saves counts Save calls.
	Saves int
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{} }

func (m *MemStore) Load() (PersistentState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return PersistentState{Sequences: maps.Clone(m.st.Sequences)}, nil
}

func (m *MemStore) Save(st PersistentState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st = PersistentState{Sequences: maps.Clone(st.Sequences)}
	m.Saves++
	return nil
}

// FileStore keeps the state in a JSON file, written atomically (a temporary
// file in the same directory, synced, then renamed over the old one).
type FileStore struct {
	Path   string
	Logger *slog.Logger
	now    func() time.Time
}

// StateFileName is the FileStore's file in the daemon's state_dir.
const StateFileName = "bul.json"

// NewFileStore returns a FileStore for dir/bul.json.
func NewFileStore(dir string, log *slog.Logger) *FileStore {
	return &FileStore{Path: filepath.Join(dir, StateFileName), Logger: log}
}

// Load reads the file. A missing file is an empty state. A corrupt file is
// renamed aside (Path.corrupt-UNIXTIME) with a warning and the engine starts
// fresh: losing sequence numbers costs at most one status 135 round trip.
func (s *FileStore) Load() (PersistentState, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return PersistentState{}, nil
	}
	if err != nil {
		return PersistentState{}, fmt.Errorf("bul: reading state: %w", err)
	}
	var st PersistentState
	if err := json.Unmarshal(b, &st); err != nil {
		now := time.Now
		if s.now != nil {
			now = s.now
		}
		aside := s.Path + ".corrupt-" + strconv.FormatInt(now().Unix(), 10)
		if rerr := os.Rename(s.Path, aside); rerr != nil {
			return PersistentState{}, fmt.Errorf("bul: state file %s is corrupt (%v) and cannot be moved aside: %w", s.Path, err, rerr)
		}
		s.logger().Warn("corrupt BUL state file moved aside; starting fresh", "file", s.Path, "moved_to", aside, "err", err)
		return PersistentState{}, nil
	}
	return st, nil
}

// Save writes the state atomically.
func (s *FileStore) Save(st PersistentState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("bul: encoding state: %w", err)
	}
	dir := filepath.Dir(s.Path)
	f, err := os.CreateTemp(dir, filepath.Base(s.Path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("bul: writing state: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("bul: writing state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("bul: syncing state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bul: writing state: %w", err)
	}
	if err := os.Rename(tmp, s.Path); err != nil {
		return fmt.Errorf("bul: replacing state: %w", err)
	}
	ok = true
	// Make the rename durable; failure here is not worth failing the save.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (s *FileStore) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
