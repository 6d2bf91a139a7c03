package tunio

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/mcoad/mcoad/pkg/dataplane"
)

// TunnelCounters are one tunnel's live counters.
type TunnelCounters struct {
	TxPackets, TxBytes, RxPackets, RxBytes, TxErrors atomic.Uint64
}

// CounterFor returns k's counters in cur, else the ones k had in old (a
// binding's counters carry on across a change of the set), else new ones;
// cur holds them after.
func CounterFor[K comparable](cur, old map[K]*TunnelCounters, k K) *TunnelCounters {
	c := cur[k]
	if c == nil {
		c = old[k]
	}
	if c == nil {
		c = &TunnelCounters{}
	}
	cur[k] = c
	return c
}

func (c *TunnelCounters) Snapshot() dataplane.Counters {
	return dataplane.Counters{
		TxPackets: c.TxPackets.Load(), TxBytes: c.TxBytes.Load(),
		RxPackets: c.RxPackets.Load(), RxBytes: c.RxBytes.Load(),
		TxErrors: c.TxErrors.Load(),
	}
}

type DropCounters struct {
	Malformed, NotHome, Unknown, NoBinding, Spoofed, tooBig, writeErr atomic.Uint64
}

func (d *DropCounters) Snapshot() dataplane.Drops {
	return dataplane.Drops{
		Malformed: d.Malformed.Load(), NotHome: d.NotHome.Load(), Unknown: d.Unknown.Load(),
		NoBinding: d.NoBinding.Load(), Spoofed: d.Spoofed.Load(), TooBig: d.tooBig.Load(),
		WriteErr: d.writeErr.Load(),
	}
}

// ErrLimiter lets a packet loop log an error at most once a second, so that
// a link that went away does not flood the log.
type ErrLimiter struct{ last time.Time }

func (l *ErrLimiter) Ok() bool {
	now := time.Now()
	if now.Sub(l.last) < time.Second {
		return false
	}
	l.last = now
	return true
}

// Retry handles a failed read or receive of a packet loop. It returns false
// when the loop is to end (stop is set: its device or socket was closed on
// purpose); otherwise it logs msg with args and err, at most once a second,
// and pauses, so that a lasting error does not spin.
func (l *ErrLimiter) Retry(stop *atomic.Bool, log *slog.Logger, msg string, err error, args ...any) bool {
	if stop.Load() {
		return false
	}
	if l.Ok() {
		log.Warn(msg, append(args, "err", err)...)
	}
	time.Sleep(10 * time.Millisecond)
	return true
}
