package e2e

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
	"github.com/mcoad/mcoad/pkg/control"
)

// TestRestartMN: mcoad stopped with deregister_on_stop = false leaves its
// bindings in place; started again, it keeps every interface's BID and
// registers with sequence numbers that move on from the persisted ones, so
// the HA accepts them at once (no status 135, no resynchronisation).
func TestRestartMN(t *testing.T) {
	t.Parallel()
	e := setup(t, opts{mn: lab.MNConfig{KeepOnStop: true}})
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })
	e.waitFor("three bindings registered on the MN", registerTimeout, func() error { return e.registered(ifaces...) })
	bidsBefore := maps.Clone(e.bids)
	seqBefore := map[uint16]uint16{}
	for _, x := range e.mustCache() {
		seqBefore[x.BID] = x.Sequence
	}

	mark := e.ha.BUMark()
	if err := e.mn.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.mn.Proc().Err(); err != nil {
		t.Errorf("mcoad exited with %v on SIGTERM", err)
	}
	// Nothing de-registered.
	time.Sleep(300 * time.Millisecond)
	if err := e.cacheIs(ifaces...); err != nil {
		t.Fatalf("after mcoad stopped with deregister_on_stop = false: %v", err)
	}
	if bus := e.processedBUs(mark); len(bus) != 0 {
		t.Errorf("mcoad sent BUs while stopping: %+v", bus)
	}

	if err := e.mn.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.waitFor("registered again after the restart", registerTimeout, func() error {
		c, err := e.cache()
		if err != nil {
			return err
		}
		for _, x := range c {
			if d := x.Sequence - seqBefore[x.BID]; d == 0 || d >= 1<<15 {
				return fmt.Errorf("BID %d: sequence %d, not after %d yet", x.BID, x.Sequence, seqBefore[x.BID])
			}
		}
		if err := e.checkEntries(c, ifaces...); err != nil {
			return err
		}
		return e.registered(ifaces...)
	})
	if err := e.learnBIDs(); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(bidsBefore, e.bids) {
		t.Errorf("BIDs changed across the restart: %v -> %v", bidsBefore, e.bids)
	}
	for _, bu := range e.processedBUs(mark) {
		if bu.Status != 0 {
			t.Errorf("BU after the restart answered with status %d: %+v", bu.Status, bu)
		}
	}
	if m := e.metrics(e.ha); m[`mcoa_ha_bu_rejected_total{status="135"}`] != 0 {
		t.Errorf("the HA answered %v BUs with 135 (sequence number out of window)", m[`mcoa_ha_bu_rejected_total{status="135"}`])
	}
	if m := e.metrics(e.mn); m["mcoad_sequence_resyncs_total"] != 0 || m["mcoad_ba_accepted_total"] < 1 {
		t.Errorf("restarted mcoad: %v resynchronisations, %v BAs accepted", m["mcoad_sequence_resyncs_total"], m["mcoad_ba_accepted_total"])
	}
}

// TestRestartHA: mcoa-ha stopped (SIGTERM) and started again has its
// cache back at once (home_agent.state_dir) and defends the home address
// again; the MN's next refresh (short lifetime here) is accepted as is,
// since the sequence numbers came back too.
func TestRestartHA(t *testing.T) {
	t.Parallel()
	const lifetime = 8 * time.Second
	e, _ := setupHAState(t, opts{mn: lab.MNConfig{Lifetime: lifetime}}, "")
	e.waitFor("three bindings in the HA's cache", registerTimeout, func() error { return e.cacheIs(ifaces...) })

	if err := e.ha.Restart(e.ctx); err != nil {
		t.Fatal(err)
	}
	var st control.Status = e.status(e.ha)
	t.Logf("restarted mcoa-ha: %d cache entries right after the start", st.Counts.CacheEntries)
	if err := e.cacheIs(ifaces...); err != nil {
		t.Fatalf("right after the restart: %v", err)
	}
	e.waitFor("proxy neighbour advertisement back", registerTimeout, func() error {
		if !e.proxied() {
			return fmt.Errorf("the HA does not defend %s", lab.HoA)
		}
		return nil
	})
	// The MN refreshes before its granted lifetime runs out.
	e.waitFor("the MN's refresh accepted by the restarted HA", lifetime+4*time.Second, func() error {
		if m := e.metrics(e.ha); m["mcoa_ha_bu_accepted_total"] < 1 {
			return fmt.Errorf("the restarted HA accepted %v BUs", m["mcoa_ha_bu_accepted_total"])
		}
		return nil
	})
	if m := e.metrics(e.ha); m[`mcoa_ha_bu_rejected_total{status="135"}`] != 0 {
		t.Errorf("the restarted HA answered %v BUs with 135 (sequence number out of window)", m[`mcoa_ha_bu_rejected_total{status="135"}`])
	}
	if err := e.cacheIs(ifaces...); err != nil {
		t.Error(err)
	}
	e.waitFor("MN registered", registerTimeout, func() error { return e.registered(ifaces...) })
}
