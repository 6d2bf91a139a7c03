package ha

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcoad/mcoad/pkg/bcache"
	"github.com/mcoad/mcoad/pkg/clock"
)

// The binding cache survives a restart or a crash of mcoa-ha in
// home_agent.state_dir/bindings.json. Decisions:
//
//   - Only a home agent keeps the file (a correspondent node alone keeps
//     nothing: its bindings are short and need return routability
//     again anyway); with both roles the correspondent's bindings are in
//     it too, with the correspondent address each was registered with.
//   - The owner goroutine decides when a copy is due (the caches'
//     generations moved) and hands a snapshot to a writer goroutine; it
//     never waits for the disk. Writes start at most one per
//     saveInterval, the first of a burst at once; the last one is written
//     when the agent stops.
//   - Each write is a new file, synced, renamed over the old one, and the
//     directory synced: a crash leaves the old or the new file, never a
//     part. A file that cannot be read or parsed, or of another format
//     version, is logged, moved aside (bindings.json.bad) and the agent
//     starts empty.
//   - Expiry times are absolute (wall clock): time spent stopped counts.
//   - A file written in this boot by a process in another network
//     namespace (netNS: inode and cookie) is not restored: the bindings
//     are that namespace's (two home agents sharing a state_dir, as
//     parallel labs would with the default). After a reboot every
//     namespace is new, so the boot decides.

// stateFileName is the file in state_dir.
const stateFileName = "bindings.json"

// stateFormat and stateVersion identify the file's format. A reader
// refuses other versions: a later format that an older mcoa-ha cannot
// read gets a new version number.
const (
	stateFormat  = "mcoa-ha bindings"
	stateVersion = 1
)

// saveInterval is the shortest time between the starts of two writes;
// retryInterval the wait after a failed one.
const (
	saveInterval  = 50 * time.Millisecond
	retryInterval = 5 * time.Second
)

// stateFile is bindings.json.
type stateFile struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Saved   time.Time `json:"saved"`
	// BootID and NetNS say where it was written (see the decisions).
	BootID        string     `json:"boot_id,omitempty"`
	NetNS         string     `json:"netns,omitempty"`
	HomeAgent     []stateHoA `json:"home_agent"`
	Correspondent []stateHoA `json:"correspondent,omitempty"`
}

type stateHoA struct {
	HoA          netip.Addr     `json:"hoa"`
	LastSequence uint16         `json:"last_sequence"`
	Prefixes     []netip.Prefix `json:"prefixes,omitempty"`
	// Local is the correspondent address the bindings were registered
	// with (correspondent only).
	Local    netip.Addr     `json:"local,omitzero"`
	Bindings []stateBinding `json:"bindings"`
}

type stateBinding struct {
	BID          uint16     `json:"bid"`
	CoA          netip.Addr `json:"coa"`
	Priority     uint8      `json:"priority"`
	Sequence     uint16     `json:"sequence"`
	Lifetime     uint32     `json:"lifetime"` // seconds granted
	Expires      time.Time  `json:"expires"`
	MobileRouter bool       `json:"mobile_router,omitempty"`
	BRRSent      bool       `json:"brr_sent,omitempty"`
}

func toState(hs []bcache.SavedHoA, local map[netip.Addr]netip.Addr) []stateHoA {
	out := make([]stateHoA, 0, len(hs))
	for _, h := range hs {
		s := stateHoA{HoA: h.HoA, LastSequence: h.LastSequence, Prefixes: h.Prefixes, Local: local[h.HoA],
			Bindings: make([]stateBinding, len(h.Bindings))}
		for i, b := range h.Bindings {
			s.Bindings[i] = stateBinding{BID: b.BID, CoA: b.CoA, Priority: b.Priority, Sequence: b.Sequence,
				Lifetime: uint32(b.Lifetime / time.Second), Expires: b.Expires.UTC(),
				MobileRouter: b.MobileRouter, BRRSent: b.BRRSent}
		}
		out = append(out, s)
	}
	// Table order is random; a sorted file reads better and diffs well.
	slices.SortFunc(out, func(a, b stateHoA) int { return a.HoA.Compare(b.HoA) })
	return out
}

func fromState(hs []stateHoA, home bool) []bcache.SavedHoA {
	out := make([]bcache.SavedHoA, 0, len(hs))
	for _, h := range hs {
		s := bcache.SavedHoA{HoA: h.HoA, LastSequence: h.LastSequence, Prefixes: h.Prefixes,
			Bindings: make([]bcache.SavedBinding, len(h.Bindings))}
		for i, b := range h.Bindings {
			s.Bindings[i] = bcache.SavedBinding{BID: b.BID, CoA: b.CoA, Priority: b.Priority, Sequence: b.Sequence,
				Lifetime: time.Duration(b.Lifetime) * time.Second, Expires: b.Expires,
				HomeRegistration: home, MobileRouter: b.MobileRouter, BRRSent: b.BRRSent}
		}
		out = append(out, s)
	}
	return out
}

// stateStore reads and writes bindings.json in one directory.
type stateStore struct {
	dir  string
	path string
	// boot and netns identify this process's boot and network namespace
	// ("" when unknown: then nothing is refused for them).
	boot, netns string
	// writes and failures count write's outcomes (GET /metrics).
	writes, failures atomic.Uint64
}

func newStateStore(dir string) *stateStore {
	return &stateStore{dir: dir, path: filepath.Join(dir, stateFileName), boot: bootID(), netns: netNS()}
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// errNoState: there is no file (a first start).
var errNoState = errors.New("no saved bindings")

// errForeign: the file belongs to another network namespace.
var errForeign = errors.New("saved by a home agent in another network namespace in this boot")

// load reads the file. errNoState when there is none; errForeign when it
// is another namespace's; any other error means it is unusable.
func (s *stateStore) load() (*stateFile, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoState
	}
	if err != nil {
		return nil, err
	}
	return s.parse(data)
}

func (s *stateStore) parse(data []byte) (*stateFile, error) {
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("not a bindings file: %w", err)
	}
	if head.Format != stateFormat {
		return nil, fmt.Errorf("not a bindings file (format %q, want %q)", head.Format, stateFormat)
	}
	if head.Version != stateVersion {
		return nil, fmt.Errorf("format version %d, this mcoa-ha reads version %d", head.Version, stateVersion)
	}
	var f stateFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("version %d: %w", stateVersion, err)
	}
	if s.boot != "" && f.BootID == s.boot && s.netns != "" && f.NetNS != "" && f.NetNS != s.netns {
		return &f, fmt.Errorf("%w (%s, this one is %s)", errForeign, f.NetNS, s.netns)
	}
	return &f, nil
}

// setAside moves an unusable file out of the way, so that it can be
// looked at and the next write does not fail on it.
func (s *stateStore) setAside() error {
	return os.Rename(s.path, s.path+".bad")
}

// marshal encodes a snapshot for write.
func (s *stateStore) marshal(snap *stateSnapshot) ([]byte, error) {
	f := stateFile{
		Format:        stateFormat,
		Version:       stateVersion,
		Saved:         snap.at.UTC(),
		BootID:        s.boot,
		NetNS:         s.netns,
		HomeAgent:     toState(snap.ha, nil),
		Correspondent: toState(snap.cn, snap.local),
	}
	b, err := json.MarshalIndent(&f, "", " ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// write replaces the file with data atomically and durably: a temporary
// file in the same directory, synced, renamed over the file, and the
// directory synced so that the rename survives a power cut.
func (s *stateStore) write(data []byte) (err error) {
	defer func() {
		if err != nil {
			s.failures.Add(1)
		} else {
			s.writes.Add(1)
		}
	}()
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, stateFileName+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), s.path); err != nil {
		return err
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeTemps removes temporary files a crash left in the middle of a
// write.
func (s *stateStore) removeTemps() {
	ms, _ := filepath.Glob(filepath.Join(s.dir, stateFileName+".tmp-*"))
	for _, m := range ms {
		os.Remove(m)
	}
}

// stateSnapshot is what the owner hands to the writer: copies that share
// nothing mutable with the caches.
type stateSnapshot struct {
	at    time.Time
	ha    []bcache.SavedHoA
	cn    []bcache.SavedHoA
	local map[netip.Addr]netip.Addr
}

// stateWriter writes snapshots on its own goroutine, one at a time.
type stateWriter struct {
	store *stateStore
	req   chan *stateSnapshot
	done  chan writeResult
}

// writeResult is the writer's answer: how the write went and how long it
// took (the encoding and the disk, real time).
type writeResult struct {
	err  error
	took time.Duration
}

func newStateWriter(store *stateStore) *stateWriter {
	w := &stateWriter{store: store, req: make(chan *stateSnapshot, 1), done: make(chan writeResult, 1)}
	go w.loop()
	return w
}

func (w *stateWriter) loop() {
	for snap := range w.req {
		start := time.Now()
		data, err := w.store.marshal(snap)
		if err == nil {
			err = w.store.write(data)
		}
		w.done <- writeResult{err, time.Since(start)}
	}
}

// close ends the goroutine; no write may be in flight.
func (w *stateWriter) close() { close(w.req) }

// persister is the owner goroutine's side of keeping the cache: when a
// copy is due and whether one is being written.
type persister struct {
	store *stateStore
	w     *stateWriter
	timer clock.Timer // armed: a write is due once the interval is over
	armed bool
	busy  bool   // a snapshot is with the writer
	saved uint64 // generation written last
	// inFlight is the generation of the snapshot with the writer.
	inFlight uint64
	last     time.Time     // when the last write started
	wait     time.Duration // saveInterval or more, retryInterval after a failure
	failing  bool
}

// chans returns the channels Run waits on: the interval timer (nil when
// not armed) and the writer's answers (nil without a state directory).
func (p *persister) chans() (<-chan time.Time, <-chan writeResult) {
	if p == nil {
		return nil, nil
	}
	var t <-chan time.Time
	if p.armed {
		t = p.timer.C()
	}
	return t, p.w.done
}

func (a *Agent) startPersist() {
	p := a.persist
	p.w = newStateWriter(p.store)
	p.timer = a.clk.NewTimer(time.Hour)
	p.timer.Stop()
}

// generation moves whenever either cache changes what it would save.
func (a *Agent) generation() uint64 {
	g := a.cache.Generation()
	if a.cn != nil {
		g += a.cn.cache.Generation()
	}
	return g
}

// snapshot copies the caches for the writer.
func (a *Agent) snapshot(now time.Time) *stateSnapshot {
	s := &stateSnapshot{at: now, ha: a.cache.Save(nil)}
	if a.cn != nil {
		s.cn = a.cn.cache.Save(nil)
		s.local = maps.Clone(a.cn.local)
	}
	return s
}

// saveDue hands a snapshot to the writer when the caches changed since
// the last one, the writer is idle and the interval since the last write
// is over; otherwise it arms the timer for the end of the interval (the
// writer's answer brings Run back here).
func (a *Agent) saveDue() {
	p := a.persist
	if p == nil || p.busy {
		return
	}
	g := a.generation()
	if g == p.saved {
		return
	}
	now := a.clk.Now()
	if wait := p.last.Add(p.wait).Sub(now); !p.last.IsZero() && wait > 0 {
		if !p.armed {
			p.timer.Reset(wait)
			p.armed = true
		}
		return
	}
	if p.armed {
		p.timer.Stop()
		p.armed = false
	}
	p.busy, p.inFlight, p.last = true, g, now
	p.w.req <- a.snapshot(now)
}

// saved takes the writer's answer. The next write waits saveInterval, or
// as long as this one took when that was longer: a large cache is not
// written back to back.
func (a *Agent) saved(r writeResult) {
	p := a.persist
	p.busy = false
	if err := r.err; err != nil {
		if !p.failing {
			a.log.Error("binding cache not saved: a crash now would lose the bindings since the last save",
				"file", p.store.path, "err", err, "retry", retryInterval)
		}
		p.failing, p.wait = true, retryInterval
		return
	}
	if p.failing {
		a.log.Info("binding cache saved again", "file", p.store.path)
	}
	p.failing, p.wait, p.saved = false, max(saveInterval, r.took), p.inFlight
}

// stopPersist waits for a write in flight, writes what changed since, and
// ends the writer.
func (a *Agent) stopPersist() {
	p := a.persist
	if p.busy {
		a.saved(<-p.w.done)
	}
	if p.armed {
		p.timer.Stop()
		p.armed = false
	}
	if g := a.generation(); g != p.saved {
		data, err := p.store.marshal(a.snapshot(a.clk.Now()))
		if err == nil {
			err = p.store.write(data)
		}
		if err != nil {
			a.log.Error("binding cache not saved on stop", "file", p.store.path, "err", err)
		} else {
			p.saved = g
		}
	}
	p.w.close()
}

// restore puts the saved bindings back, before anything is served, as if
// their BUs had just been accepted: proxy neighbour entries, data plane
// (tunnel routes, NEMO prefix routes), timers from their saved expiry,
// sequence numbers. Nothing usable: the agent starts empty.
func (a *Agent) restore() {
	p := a.persist
	st := p.store
	st.removeTemps()
	f, err := st.load()
	switch {
	case errors.Is(err, errNoState):
		a.log.Info("no saved bindings: starting with an empty binding cache", "file", st.path)
		return
	case errors.Is(err, errForeign):
		a.log.Warn("saved bindings not restored: starting with an empty binding cache", "file", st.path, "err", err)
		return
	case err != nil:
		a.log.Error("saved bindings unreadable: starting with an empty binding cache", "file", st.path, "err", err)
		if err := st.setAside(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("unreadable bindings file not set aside", "file", st.path, "err", err)
		} else if err == nil {
			a.log.Warn("unreadable bindings file kept for inspection", "file", st.path+".bad")
		}
		return
	}
	now := a.clk.Now()
	res := a.cache.Restore(fromState(f.HomeAgent, true), now)
	for _, e := range res.Refused {
		a.log.Warn("saved home address not restored", "err", e)
	}
	a.apply(res.Changes)
	attrs := []any{"file", st.path, "saved", f.Saved, "down", now.Sub(f.Saved).Round(time.Millisecond),
		"home_addresses", res.HoAs, "bindings", res.Bindings, "expired", res.Expired, "refused", len(res.Refused)}
	if len(f.Correspondent) > 0 {
		attrs = append(attrs, a.restoreCN(f.Correspondent, now)...)
	}
	a.log.Info("bindings restored", attrs...)
}

// restoreCN restores the correspondent's bindings (those registered with
// an address it still answers on) and returns what to log.
func (a *Agent) restoreCN(hs []stateHoA, now time.Time) []any {
	if a.cn == nil {
		a.log.Info("saved correspondent bindings not restored: the correspondent is not enabled", "home_addresses", len(hs))
		return nil
	}
	c := a.cn
	local := map[netip.Addr]netip.Addr{}
	keep := hs[:0:0]
	for _, h := range hs {
		if !slices.Contains(c.addrs, h.Local) {
			a.log.Warn("saved correspondent home address not restored", "hoa", h.HoA, "local", h.Local,
				"err", "registered with an address the correspondent no longer answers on")
			continue
		}
		local[h.HoA] = h.Local
		keep = append(keep, h)
	}
	res := c.cache.Restore(fromState(keep, false), now)
	for _, e := range res.Refused {
		a.log.Warn("saved correspondent home address not restored", "err", e)
	}
	for _, ch := range res.Changes {
		if ch.Kind == bcache.HoAUp {
			c.local[ch.HoA] = local[ch.HoA]
		}
	}
	a.cnApply(res.Changes, netip.Addr{})
	return []any{"correspondent_bindings", res.Bindings, "correspondent_expired", res.Expired}
}
