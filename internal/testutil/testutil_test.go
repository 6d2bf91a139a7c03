package testutil

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestEventuallyWaits(t *testing.T) {
	start := time.Now()
	Eventually(t, time.Second, time.Millisecond, "20 ms", func() bool { return time.Since(start) > 20*time.Millisecond })
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("returned before the condition held")
	}
}

func TestEventuallyFails(t *testing.T) {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(ft, 10*time.Millisecond, time.Millisecond, "never", func() bool { return false })
	}()
	<-done
	if ft.msg == "" {
		t.Fatal("a condition that never holds did not fail the test")
	}
}

type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit() // as t.Fatalf does
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { fmt.Fprintf(&b, "%d;", i) })
	}
	wg.Wait()
	if n := len(b.String()); n != 20 {
		t.Fatalf("%d bytes written, want 20: %q", n, b.String())
	}
}
