package dataplane

import (
	"sync/atomic"
	"time"
)

// tunnelCounters are one tunnel's live counters.
type tunnelCounters struct {
	txPackets, txBytes, rxPackets, rxBytes, txErrors atomic.Uint64
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
