package dataplane

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// tunnelCounters are one tunnel's live counters.
type tunnelCounters struct {
	txPackets, txBytes, rxPackets, rxBytes, txErrors atomic.Uint64
}

// counterFor returns k's counters in cur, else the ones k had in old (a
// binding's counters carry on across a change of the set), else new ones;
// cur holds them after.
func counterFor[K comparable](cur, old map[K]*tunnelCounters, k K) *tunnelCounters {
	c := cur[k]
	if c == nil {
		c = old[k]
	}
	if c == nil {
		c = &tunnelCounters{}
	}
	cur[k] = c
	return c
}

func (c *tunnelCounters) snapshot() Counters {
	return Counters{
		TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(),
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(),
		TxErrors: c.txErrors.Load(),
	}
}

type dropCounters struct {
	malformed, notHome, unknown, noBinding, spoofed, tooBig, writeErr atomic.Uint64
}

func (d *dropCounters) snapshot() Drops {
	return Drops{
		Malformed: d.malformed.Load(), NotHome: d.notHome.Load(), Unknown: d.unknown.Load(),
		NoBinding: d.noBinding.Load(), Spoofed: d.spoofed.Load(), TooBig: d.tooBig.Load(),
		WriteErr: d.writeErr.Load(),
	}
}

// errLimiter lets a packet loop log an error at most once a second, so that
// a link that went away does not flood the log.
type errLimiter struct{ last time.Time }

func (l *errLimiter) ok() bool {
	now := time.Now()
	if now.Sub(l.last) < time.Second {
		return false
	}
	l.last = now
	return true
}

// retry handles a failed read or receive of a packet loop. It returns false
// when the loop is to end (stop is set: its device or socket was closed on
// purpose); otherwise it logs msg with args and err, at most once a second,
// and pauses, so that a lasting error does not spin.
func (l *errLimiter) retry(stop *atomic.Bool, log *slog.Logger, msg string, err error, args ...any) bool {
	if stop.Load() {
		return false
	}
	if l.ok() {
		log.Warn(msg, append(args, "err", err)...)
	}
	time.Sleep(10 * time.Millisecond)
	return true
}
