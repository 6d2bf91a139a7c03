package ebpf

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcoad/mcoad/pkg/dataplane"
)

// privateBPF mounts a bpffs of the test's own (ip netns exec remounts /sys,
// and runs must not meet in /sys/fs/bpf).
func privateBPF(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mounting a bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir + "/mcoad"
}

// TestKeepAcrossRestart: between Keep and the next process's New the
// kernel alone carries the home address's packets both ways; the next
// backend takes the maps, links and home device over (counters continue),
// and its Close leaves nothing, pins included.
func TestKeepAcrossRestart(t *testing.T) {
	l, dir, tun, ping, kept := keptLab(t)
	if len(kept) != 1 || kept[0].BID != 1 {
		t.Fatalf("Keep: %v; want BID 1 kept", kept)
	}
	ping(t, "between the processes")
	if out := l.mn.Exec(t, "ip", "-6", "route", "show", "table", "1001"); !strings.Contains(out, "encap bpf") {
		t.Errorf("table 1001 after Keep: %q", out)
	}

	l.restart(t, dataplane.Config{Backend: Name, BPFDir: dir, Adopt: kept})
	if st := l.backend.Stats().Tunnels[1]; st.TxPackets < 2 || st.RxPackets < 2 {
		t.Errorf("counters after adoption %+v: want the kept ones (two echoes)", st)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("pins left after adoption: %v", ents)
	}
	l.tunnels(t, tun)
	ping(t, "after")
	if err := l.backend.Close(); err != nil {
		t.Fatal(err)
	}
	if out := l.mn.Exec(t, "ip", "-6", "route", "show", "table", "1001"); out != "" {
		t.Errorf("table 1001 after Close: %q", out)
	}
	if _, err := l.mn.Try("ip", "link", "show", "mcoa0"); err == nil {
		t.Error("the home device outlived Close")
	}
}

// TestAdoptWithoutKeptMaps: maps that cannot be taken over (another
// version's, or gone) leave the next process starting afresh, and the
// first SetTunnels makes the tunnel work again.
func TestAdoptWithoutKeptMaps(t *testing.T) {
	l, dir, tun, ping, kept := keptLab(t)
	os.Remove(dir + "/tunnels")
	l.restart(t, dataplane.Config{Backend: Name, BPFDir: dir, Adopt: kept})
	l.tunnels(t, tun)
	ping(t, "with fresh maps")
}

// TestDiscardKept: what a stop kept and no process adopts (mcoad -cleanup,
// a configuration that cannot adopt it) goes: the pins (with them their tc
// links) and the encap routes.
func TestDiscardKept(t *testing.T) {
	l, dir, _, _, _ := keptLab(t)
	if err := l.mn.Do(func() error { return Discard(dir, 1000) }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("pins left: %v", err)
	}
	if out := l.mn.Exec(t, "ip", "-6", "route", "show", "table", "1001"); out != "" {
		t.Errorf("table 1001 after Discard: %q", out)
	}
}

// keptLab is a lab whose backend pins under a bpffs of the test's own,
// with BID 1's tunnel carrying an echo (checked), then kept (Keep).
func keptLab(t *testing.T) (l *lab, dir string, tun dataplane.Tunnel, ping func(*testing.T, string), kept []dataplane.Tunnel) {
	t.Helper()
	l = newLab(t)
	dir = privateBPF(t)
	l.backend.Close() // the default one: this lab's pins go to dir
	l.restart(t, dataplane.Config{Backend: Name, BPFDir: dir})
	tun = dataplane.Tunnel{BID: 1, Iface: "m0", CoA: coa, HA: haAddr, HoA: hoa}
	l.tunnels(t, tun)
	l.udpEcho(t)
	ping = l.udpClient(t)
	ping(t, "before")
	k, ok := l.backend.(dataplane.Keeper)
	if !ok {
		t.Fatal("the eBPF backend is not a Keeper")
	}
	kept, err := k.Keep()
	if err != nil {
		t.Fatalf("Keep: %v", err)
	}
	return l, dir, tun, ping, kept
}

// restart starts a backend with cfg in the mobile node (the previous one
// is left alone: Keep or Close it first).
func (l *lab) restart(t *testing.T, cfg dataplane.Config) {
	t.Helper()
	c, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	err = l.mn.Do(func() (err error) {
		l.backend, err = New(c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b := l.backend
	t.Cleanup(func() { b.Close() })
}

// udpEcho answers UDP on the correspondent's port 7.
func (l *lab) udpEcho(t *testing.T) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := l.ha.Do(func() (err error) {
		c, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cn, 7)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return c
}

// udpClient returns a function that sends one datagram from the home
// address to the echo and fails the test unless it comes back.
func (l *lab) udpClient(t *testing.T) func(*testing.T, string) {
	t.Helper()
	var c *net.UDPConn
	err := l.mn.Do(func() (err error) {
		c, err = net.DialUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(hoa, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(cn, 7)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func(t *testing.T, when string) {
		t.Helper()
		buf := make([]byte, 64)
		if _, err := c.Write([]byte(when)); err != nil {
			t.Fatalf("%s: send: %v", when, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != when {
			t.Fatalf("%s: echo %q, %v", when, buf[:n], err)
		}
	}
}
