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

// TestSum: RFC 1071's worked example (section 3) and an odd length.
func TestSum(t *testing.T) {
	if got := Sum([]byte{0x00, 0x01, 0xf2, 0x03}, []byte{0xf4, 0xf5, 0xf6, 0xf7}); got != 0xddf2 {
		t.Errorf("RFC 1071 example: %#04x, want 0xddf2", got)
	}
	if got := Sum([]byte{0x01}); got != 0x0100 {
		t.Errorf("odd octet: %#04x, want 0x0100", got)
	}
	p := Pseudo(make([]byte, 16), make([]byte, 16), 135, 0x01020304)
	if len(p) != 40 || p[32] != 1 || p[35] != 4 || p[39] != 135 {
		t.Errorf("pseudo-header %x", p)
	}
}
