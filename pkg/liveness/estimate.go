package liveness

import (
	"math/bits"
	"time"
)

// A path's round trip and loss, from its probes' answers.

const (
	// initialRTO: a probe's timeout before its path's round trip is known.
	initialRTO = time.Second
	maxRTO     = 3 * time.Second
	// lossWindow probes make up Health.Loss.
	lossWindow = 32
)

// sampleRTT takes one probe's round trip into the smoothed estimate (RFC
// 6298 2.2, 2.3).
func (p *path) sampleRTT(rtt time.Duration) {
	p.rtt = max(rtt, 0)
	if p.srtt == 0 {
		p.srtt, p.rttvar = p.rtt, p.rtt/2
		return
	}
	d := p.srtt - p.rtt
	if d < 0 {
		d = -d
	}
	p.rttvar += (d - p.rttvar) / 4
	p.srtt += (p.rtt - p.srtt) / 8
}

// record notes a probe's outcome for Loss.
func (p *path) record(lost bool) {
	p.results <<= 1
	if lost {
		p.results |= 1
		p.lost++
	}
	p.nresults = min(p.nresults+1, lossWindow)
}

func (p *path) loss() float64 {
	if p.nresults == 0 {
		return 0
	}
	mask := uint32(1)<<p.nresults - 1
	if p.nresults == 32 {
		mask = ^uint32(0)
	}
	return float64(bits.OnesCount32(p.results&mask)) / float64(p.nresults)
}

// rto is how long p's probe may take to come back.
func (p *path) rto() time.Duration {
	if p.srtt == 0 {
		return max(p.t.Interval, initialRTO)
	}
	return min(max(2*p.srtt+4*p.rttvar, p.t.Interval), max(p.t.Interval, maxRTO))
}

// retry is the probing interval of a dead path.
func (p *path) retry() time.Duration {
	return min(max(4*p.t.Interval, 200*time.Millisecond), p.t.Idle)
}
