package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
)

// setupHAState is setup with mcoa-ha running the data plane backend
// names ("" leaves the lab's choice); mcoad starts once mcoa-ha runs so.
// It returns mcoa-ha's state directory (a directory of this lab).
func setupHAState(t *testing.T, o opts, backend string) (*env, string) {
	t.Helper()
	mn := !o.noMN
	o.noMN = true
	e := setup(t, o)
	b, err := os.ReadFile(e.ha.Config)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	dir := e.ha.StateDir
	if backend != "" {
		text = regexp.MustCompile(`(?m)^\[dataplane\]\nbackend = "[a-z]+"`).ReplaceAllString(text, fmt.Sprintf("[dataplane]\nbackend = %q", backend))
	}
	if text != string(b) {
		if err := os.WriteFile(e.ha.Config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.ha.Restart(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if mn {
		e.startMN()
	}
	return e, dir
}

// TestHARestartKilled: mcoa-ha killed with SIGKILL while the MN has its
// three bindings, and started again, restores them from its state
// directory before it serves: the home address answers a ping from the
// CN again within moments of the new process's start (target 1 s; the
// test allows 5 s), with the same bindings in the cache and the home
// address defended on the home link, and the MN never has to register
// again.
func TestHARestartKilled(t *testing.T) {
	t.Parallel()
	e, dir := setupHAState(t, opts{noMN: true}, "tun")
	e.mnCfg.Backend = "tun"
	e.startMN()
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })
	e.waitFor("three bindings registered on the MN", registerTimeout, func() error { return e.registered(ifaces...) })
	e.waitFor("the home address answers the CN", registerTimeout, func() error { return e.lab.Ping(e.ctx, lab.CN, lab.HoA) })
	before := fmtCache(e.mustCache())
	e.waitFor("the bindings in the HA's state file", registerTimeout, func() error {
		b, err := os.ReadFile(filepath.Join(dir, "bindings.json"))
		if n := strings.Count(string(b), `"bid"`); err != nil || n != 3 {
			return fmt.Errorf("%d bindings in the state file (%v)", n, err)
		}
		return nil
	})

	if err := e.ha.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.ha.Proc().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("mcoa-ha survived SIGKILL")
	}
	if _, err := e.lab.Exec(e.ctx, lab.CN, "ping", "-6", "-n", "-c", "1", "-W", "1", lab.HoA.String()); err == nil {
		t.Fatal("the home address answers with mcoa-ha killed")
	}
	// A ping every 10 ms from the CN, with timestamps, over the restart.
	ping, err := e.lab.Start(lab.CN, "ping", "-6", "-n", "-D", "-i", "0.01", "-W", "1", lab.HoA.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ping.Stop() })
	time.Sleep(50 * time.Millisecond)

	start := time.Now()
	if err := e.ha.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	answering := time.Since(start)
	restored := e.mustCache()
	// Read after the cache: no BU had been processed when the cache
	// first answered, so what it held came from the state file.
	received := e.metrics(e.ha)["mcoa_ha_bu_received_total"]
	e.waitFor("the home address answers the CN after the restart", 5*time.Second, func() error { return e.lab.Ping(e.ctx, lab.CN, lab.HoA) })
	// SIGINT: ping writes what it buffered and exits.
	if err := ping.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ping.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("ping did not stop")
	}
	first, err := firstReply(ping.Log, start)
	if err != nil {
		t.Fatal(err)
	}
	reachable := first.Sub(start)
	t.Logf("killed mcoa-ha: control socket answers %v and the home address %v after the new process's start (target 1s)",
		answering.Round(time.Millisecond), reachable.Round(time.Millisecond))
	if reachable > 5*time.Second {
		t.Errorf("the home address answered %v after the restart, want well under 5s", reachable)
	}
	if got := fmtCache(restored); got != before {
		t.Errorf("cache right after the restart:\n%s\nbefore the kill:\n%s", got, before)
	}
	if !e.proxied() {
		t.Errorf("the restarted HA does not defend %s", lab.HoA)
	}
	if received != 0 {
		t.Errorf("the new mcoa-ha had processed %v BUs when its cache first answered: not restored from its state file", received)
	}
	// Every binding is registered. The MN's home check may have seen the
	// killed HA answer on its address but not through the tunnels and
	// refreshed them: the restored cache then takes the refresh (no 135
	// below), so wait for it rather than catch it in flight.
	e.waitFor("every binding registered after the restart", 5*time.Second, func() error { return e.registered(ifaces...) })
	if m := e.metrics(e.ha); m[`mcoa_ha_bu_rejected_total{status="135"}`] != 0 {
		t.Errorf("the restarted HA answered %v BUs with 135", m[`mcoa_ha_bu_rejected_total{status="135"}`])
	}
}

// pingReply matches a reply line of ping -D.
var pingReply = regexp.MustCompile(`(?m)^\[(\d+)\.(\d+)\] \d+ bytes from `)

// firstReply returns the time of the first reply ping -D logged at or
// after since.
func firstReply(path string, since time.Time) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	for _, m := range pingReply.FindAllStringSubmatch(string(b), -1) {
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		frac := (m[2] + "000000000")[:9]
		ns, _ := strconv.ParseInt(frac, 10, 64)
		if t := time.Unix(sec, ns); !t.Before(since) {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("no ping reply after %v in %s:\n%s", since.Format(time.RFC3339Nano), path, b)
}
