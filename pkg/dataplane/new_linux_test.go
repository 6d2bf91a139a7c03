package dataplane

import (
	"errors"
	"os"
	"testing"

	"github.com/mcoad/mcoad/internal/nstest"
)

// On a kernel without ip6_tunnel (the test machines), "auto" falls back to
// the userspace backend and "kernel" is refused; the probe leaves no link.
func TestNewChoosesBackend(t *testing.T) {
	nstest.Require(t)
	if _, err := os.Stat("/sys/module/ip6_tunnel"); err == nil {
		t.Skip("this kernel has ip6_tunnel")
	}
	ns := nstest.New(t, nstest.Prefix()+"new")
	err := ns.Do(func() error {
		b, err := New(&Config{Logger: quiet})
		if err != nil {
			return err
		}
		defer b.Close()
		if b.Name() != BackendTUN {
			t.Errorf("auto chose %q, want tun", b.Name())
		}
		if _, err := New(&Config{Backend: BackendKernel, Logger: quiet}); !errors.Is(err, ErrUnavailable) {
			t.Errorf("kernel backend without ip6_tunnel: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := ns.Exec(t, "ip", "-br", "link"); out != "" && !onlyLoopback(out) {
		t.Fatalf("links left by the probe:\n%s", out)
	}
}

func onlyLoopback(out string) bool {
	n := 0
	for _, c := range out {
		if c == '\n' {
			n++
		}
	}
	return n == 1
}
