package config

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchSettle is how long Watch waits after the last event before it looks
// at the file: editors write in several steps.
const watchSettle = 100 * time.Millisecond

// Watch calls onChange each time the content of the file at path changes:
// written in place, replaced by renaming another file over it (what most
// editors and configuration tools do), or removed and created again. It
// watches the directory rather than the file, because a watch on the file
// itself is lost when the file is replaced. Bursts of events are coalesced,
// and events that leave the content as it was (touch, chmod) are ignored.
// onChange runs on Watch's goroutine; it should load and validate the file
// and keep the running configuration if that fails.
//
// Watch blocks until ctx is done and then returns ctx.Err(); it returns
// early with an error if the directory cannot be watched. A path that is a
// symbolic link is seen to change only when the link itself is replaced.
func Watch(ctx context.Context, path string, onChange func()) error {
	return watch(ctx, path, onChange, nil)
}

// watch is Watch with a hook called once the watch is in place (tests).
func watch(ctx context.Context, path string, onChange, ready func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config: watch %s: %w", path, err)
	}
	defer w.Close()
	dir, base := filepath.Split(filepath.Clean(path))
	if dir == "" {
		dir = "."
	}
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("config: watch %s: %w", path, err)
	}
	st := &fileState{path: path}
	st.changed() // the content as it is now is the baseline
	if ready != nil {
		ready()
	}
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("config: watcher closed")
			}
			if filepath.Base(ev.Name) == base {
				settle.Reset(watchSettle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("config: watcher closed")
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return fmt.Errorf("config: watch %s: %w", path, err)
			}
			settle.Reset(watchSettle) // events were lost: look anyway
		case <-settle.C:
			if st.changed() {
				onChange()
			}
		}
	}
}

// fileState remembers the content of a file by its hash.
type fileState struct {
	path string
	sum  [sha256.Size]byte
	seen bool
}

// changed reports whether the file's content differs from the last time
// it was read (a file that appears counts as changed). A file that cannot
// be read (in the middle of being replaced) is not a change; its return
// with other content is.
func (s *fileState) changed() bool {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(data)
	if s.seen && sum == s.sum {
		return false
	}
	s.sum, s.seen = sum, true
	return true
}
