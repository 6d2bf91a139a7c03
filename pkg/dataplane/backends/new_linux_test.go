package backends

import (
	"errors"
	"os"
	"testing"

	"github.com/mcoad/mcoad/internal/nstest"
	"github.com/mcoad/mcoad/internal/pkttest"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/ebpf"
	"github.com/mcoad/mcoad/pkg/dataplane/ip6tnl"
	"github.com/mcoad/mcoad/pkg/dataplane/tun"
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
		b, err := New(&dataplane.Config{Logger: pkttest.Quiet})
		if err != nil {
			return err
		}
		defer b.Close()
		if b.Name() != tun.Name {
			t.Errorf("auto chose %q, want tun", b.Name())
		}
		if _, err := New(&dataplane.Config{Backend: ip6tnl.Name, Logger: pkttest.Quiet}); !errors.Is(err, dataplane.ErrUnavailable) {
			t.Errorf("kernel backend without ip6_tunnel: %v", err)
		}
		// This kernel takes the programs: "ebpf" runs when named.
		e, err := New(&dataplane.Config{Backend: ebpf.Name, Logger: pkttest.Quiet})
		if err != nil {
			t.Errorf("ebpf backend: %v", err)
		} else if e.Name() != ebpf.Name || e.Close() != nil {
			t.Errorf("ebpf backend is %q", e.Name())
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
