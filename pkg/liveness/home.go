package liveness

import "time"

const (
	// homeLostPause: after the home agent was found without our bindings
	// (and told so by the re-registration), the next home check waits.
	homeLostPause    = 5 * time.Second
	maxHomeLostPause = time.Minute
)

// homeCheck: does the home agent still hold our bindings? (an echo from
// the home address through the tunnels)
type homeCheck struct {
	wanted    bool
	active    bool
	misses    int
	next      time.Time
	notBefore time.Time
	lastOK    time.Time // the last proof that it holds a binding of ours
	pause     time.Duration
}

// homeOK notes a proof that the home agent holds a binding of ours.
func (c *detector) homeOK(now time.Time) {
	h := &c.home
	h.active, h.wanted, h.misses, h.lastOK, h.pause = false, false, 0, now, 0
	h.notBefore = now.Add(c.maxIdle())
	c.forgetHomeProbes()
}

// tickHome starts, probes or concludes the home check.
func (c *detector) tickHome(now time.Time) {
	h := &c.home
	if !c.homeOn || len(c.paths) == 0 {
		h.wanted, h.active = false, false
		return
	}
	if h.lastOK.IsZero() {
		h.lastOK = now
	}
	if !h.active && !h.wanted && now.Sub(h.lastOK) >= c.homeKeepalive() {
		// Nothing came through the tunnels for long: a node that only
		// waits for traffic would not notice a home agent that lost it.
		h.wanted = true
	}
	if !h.active {
		if !h.wanted || now.Before(h.notBefore) {
			h.wanted = h.wanted && now.Before(h.notBefore) // asked while paused: forgotten
			return
		}
		h.active, h.wanted, h.misses, h.next = true, false, 0, now
	}
	mult, iv, rto := c.homeTimers()
	if h.misses >= mult {
		// Found lost: the owner re-registers. While it stays lost (the
		// home agent is down), the next checks wait longer and longer.
		h.active = false
		h.pause = min(max(2*h.pause, homeLostPause), maxHomeLostPause)
		h.notBefore = now.Add(h.pause)
		c.fx.homeLost = true
		c.forgetHomeProbes()
		return
	}
	if !now.Before(h.next) {
		c.seq++
		c.out[c.seq] = outProbe{home: true, at: now, deadline: now.Add(rto)}
		if err := c.prober.Probe(0, c.hoa, c.ha, c.id, c.seq); err != nil && c.sendError != nil {
			c.sendError(nil, err)
		}
		h.next = now.Add(iv)
	}
}

// homeTimers: the home check probes at the fastest path's pace and waits as
// long as the slowest live path's round trip needs.
func (c *detector) homeTimers() (mult int, interval, rto time.Duration) {
	for _, p := range c.paths {
		if interval == 0 || p.t.Interval < interval {
			interval = p.t.Interval
		}
		mult = max(mult, p.t.Multiplier)
		if p.state != Dead {
			rto = max(rto, p.rto())
		}
	}
	return mult, interval, max(rto, interval)
}

// homeKeepalive: with no proof for this long, the home check runs anyway
// (ten keepalives of the slowest path, at least 10 s).
func (c *detector) homeKeepalive() time.Duration { return max(10*c.maxIdle(), 10*time.Second) }

func (c *detector) maxIdle() time.Duration {
	var d time.Duration
	for _, p := range c.paths {
		d = max(d, p.t.Idle)
	}
	return max(d, time.Second)
}

// forgetHomeProbes drops the home check's outstanding probes: an answer
// after the verdict proves nothing more.
func (c *detector) forgetHomeProbes() {
	for seq, o := range c.out {
		if o.home {
			delete(c.out, seq)
		}
	}
}
