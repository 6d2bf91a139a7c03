package ha

import (
	"time"

	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/control"
	"github.com/mcoad/mcoad/pkg/proto"
)

// Reasons of a BU dropped before the cache saw it (control.BU.Dropped);
// the cache's own are bcache.DropReason names.
const (
	dropNotServed = "not-served"         // a correspondent alone, at an address it does not answer on
	dropRR        = "return-routability" // the correspondent's authorization check failed
)

// publishBU publishes what became of one received BU (GET /v1/events, kind
// "bu"): the lab and the end-to-end tests read these.
func (a *Agent) publishBU(p *proto.Packet, correspondent bool, res *bcache.Result, dropped, message string) {
	if a.deps.Events == nil {
		return
	}
	bu := &control.BU{Src: p.Src, Dst: p.Dst, HoA: p.HomeAddress, Sequence: p.MH.Sequence,
		Prefixes: len(p.MH.Options.Prefixes), Correspondent: correspondent, Dropped: dropped}
	for _, b := range p.MH.Options.BIDs {
		bu.BIDs = append(bu.BIDs, b.ID)
	}
	if res != nil {
		bu.Status, bu.Answered = int(res.Status), res.Send
		if res.Dropped != bcache.NotDropped {
			bu.Dropped = res.Dropped.String()
		}
		if res.Refused != bcache.NotRefused {
			bu.Refused = res.Refused.String()
		}
	}
	a.deps.Events.Publish(control.Event{Time: a.clk.Now(), Kind: control.EventBU, BU: bu, Message: message})
}

// publishCache publishes a binding added, updated or removed in cache (the
// home agent's or the correspondent's).
func (a *Agent) publishCache(cache *bcache.Cache, c *bcache.Change, home bool) {
	if a.deps.Events == nil {
		return
	}
	e := control.CacheEntry{HoA: c.HoA, BID: c.BID, CoA: c.CoA, Priority: c.Priority, HomeRegistration: home}
	if b, ok := cache.Lookup(c.HoA, c.BID); ok {
		e.Sequence = b.Sequence
		e.Lifetime = uint32(b.Lifetime / time.Second)
		e.ExpiresIn = int64(b.Expires.Sub(a.clk.Now()) / time.Second)
	}
	a.deps.Events.Publish(control.Event{Time: a.clk.Now(), Kind: control.EventCache, Removed: c.Kind == bcache.Removed, Cache: &e})
}
