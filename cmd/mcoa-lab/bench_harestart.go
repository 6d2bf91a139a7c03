package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcoad/mcoad/internal/lab"
)

// haStateFile is where mcoa-ha keeps its binding cache in its state
// directory.
const haStateFile = "bindings.json"

// haRestartFigure: per run, the time from the new mcoa-ha's start to its
// control socket answering and to the first probe of the 1 ms CN -> HoA
// stream arriving at the MN again; and the BUs mcoad sent over all runs
// (0: the restored cache was enough, mcoad never had to register again).
type haRestartFigure struct {
	answer, reach stats
	down          time.Duration // kill to start
	mnBUs         float64
}

// haRestart kills mcoa-ha (SIGKILL) while the 1 ms CN -> HoA stream rides
// eth0, starts it again b.o.haDown later and measures from the new
// process's start until the stream arrives again.
func (b *bench) haRestart(ctx context.Context) (f haRestartFigure, err error) {
	f.down = b.o.haDown
	b.logf("mcoa-ha killed and started again, %d runs, %v apart, 1 ms probes CN -> HoA", b.o.haRuns, b.o.haDown)
	probe, err := b.probeHoA()
	if err != nil {
		return f, err
	}
	defer probe.Close()
	for i := range b.o.haRuns {
		if err := b.haSteady(ctx); err != nil {
			return f, fmt.Errorf("restart %d: %w", i+1, err)
		}
		m0, err := b.mn.Metrics(ctx)
		if err != nil {
			return f, err
		}
		answer, reach, err := b.killAndStartHA(ctx, probe)
		if err != nil {
			return f, fmt.Errorf("restart %d: %w", i+1, err)
		}
		f.answer = append(f.answer, answer)
		f.reach = append(f.reach, reach)
		if b.haEv, err = follow(ctx, b.ha.Client); err != nil {
			return f, err
		}
		if err := b.allAlive(ctx, 20*time.Second); err != nil {
			return f, fmt.Errorf("restart %d: %w", i+1, err)
		}
		m1, err := b.mn.Metrics(ctx)
		if err != nil {
			return f, err
		}
		bus := lab.SumMetric(m1, "mcoad_bu_sent_total") - lab.SumMetric(m0, "mcoad_bu_sent_total")
		f.mnBUs += bus
		b.logf("  restart %d: control socket after %s, home address reached after %s; mcoad sent %.0f BUs",
			i+1, fmtDur(answer), fmtDur(reach), bus)
		if err := sleepCtx(ctx, time.Second); err != nil {
			return f, err
		}
	}
	return f, nil
}

// haSteady waits until every path is alive, the stream rides eth0 and
// mcoa-ha has written the three bindings to its state file.
func (b *bench) haSteady(ctx context.Context) error {
	if err := b.allAlive(ctx, 20*time.Second); err != nil {
		return err
	}
	bids, err := b.bids(ctx)
	if err != nil {
		return err
	}
	if err := b.ridesOn(ctx, bids, "eth0", 15*time.Second); err != nil {
		return err
	}
	file := filepath.Join(b.ha.StateDir, haStateFile)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = lab.Poll(wctx, 20*time.Millisecond, func(context.Context) (bool, error) {
		t, err := os.ReadFile(file)
		return err == nil && strings.Count(string(t), `"bid"`) == len(benchIfaces), nil
	})
	if err != nil {
		return fmt.Errorf("%d bindings not in %s: %w", len(benchIfaces), file, err)
	}
	return nil
}

// killAndStartHA kills mcoa-ha, starts it again b.o.haDown later and
// returns how long after the start its control socket answered and the
// first probe arrived.
func (b *bench) killAndStartHA(ctx context.Context, probe *lab.Stream) (answer, reach time.Duration, err error) {
	b.stopEvents(&b.haEv)
	old := b.ha.Proc()
	if err := b.ha.Signal(syscall.SIGKILL); err != nil {
		return 0, 0, err
	}
	select {
	case <-old.Done():
	case <-time.After(5 * time.Second):
		return 0, 0, errors.New("mcoa-ha survived SIGKILL")
	}
	if err := sleepCtx(ctx, b.o.haDown); err != nil {
		return 0, 0, err
	}
	first, stop := firstArrival(probe)
	defer stop()
	start := time.Now()
	err = b.ha.Start(ctx)
	answer = time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := lab.Poll(wctx, time.Millisecond, func(context.Context) (bool, error) { return first.Load() != 0, nil }); err != nil {
		return 0, 0, fmt.Errorf("no probe reached the home address within 30s of mcoa-ha's start: %w", err)
	}
	return answer, time.Unix(0, first.Load()).Sub(start), nil
}

// firstArrival watches probe from now on and records (in Unix
// nanoseconds, within 0.2 ms) when the next probe arrives; stop ends the
// watch.
func firstArrival(probe *lab.Stream) (first *atomic.Int64, stop func()) {
	n0 := probe.Got()
	first = new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		for first.Load() == 0 {
			if probe.Got() > n0 {
				first.Store(time.Now().UnixNano())
				return
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	return first, func() { close(done) }
}
