package iface

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// BIDs are assigned here. They are stable: an interface keeps its BID
// across flaps, renames (matched by MAC address), deletion and re-creation
// (matched by name) and restarts (the table is persisted); a care-of
// address keeps its BID likewise. Every record has a distinct BID, so a BID
// is never reused while the table remembers its owner.

type recKind string

const (
	kindIface recKind = "interface"
	kindCoA   recKind = "coa"
)

type bidRecord struct {
	BID  uint16     `json:"bid"`
	Kind recKind    `json:"kind"`
	Name string     `json:"name,omitempty"` // interface name (kindIface)
	MAC  string     `json:"mac,omitempty"`  // interface MAC (kindIface), when unique
	Addr netip.Addr `json:"addr,omitzero"`  // care-of address (kindCoA)
	Seen time.Time  `json:"seen"`
}

type bidFile struct {
	Version int          `json:"version"`
	Records []*bidRecord `json:"records"`
}

const (
	bidFileVersion = 1
	// maxRecords bounds the table: the least recently seen records that
	// are not in use go first (a laptop visiting many networks in
	// BIDPerCoA mode).
	maxRecords = 1024
	// seenEvery: Seen is refreshed (and the file rewritten) at most this
	// often per record.
	seenEvery = time.Hour
)

type bidTable struct {
	path   string // "" : memory only
	log    *slog.Logger
	recs   []*bidRecord
	fixed  map[uint16]bool // BIDs fixed by rules: never allocated
	random bool            // allocate random BIDs (privacy)
	rnd    func() uint16
	dirty  bool
	live   map[*bidRecord]bool // records in use in the current round
}

func randomBID() uint16 {
	var b [2]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint16(b[:])
}

// newBIDTable loads dir/StateFile (when dir is not empty). A corrupt file
// is renamed aside with a warning and the table starts empty.
func newBIDTable(dir string, log *slog.Logger, random bool) *bidTable {
	t := &bidTable{log: log, random: random, rnd: randomBID, fixed: map[uint16]bool{}}
	if dir != "" {
		t.path = filepath.Join(dir, StateFile)
		t.load()
	}
	return t
}

func (t *bidTable) load() {
	b, err := os.ReadFile(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		t.log.Warn("cannot read the BID file; starting with new BIDs", "path", t.path, "err", err)
		return
	}
	var f bidFile
	err = json.Unmarshal(b, &f)
	if err == nil && f.Version != bidFileVersion {
		err = fmt.Errorf("unknown version %d", f.Version)
	}
	if err != nil {
		aside := t.path + ".corrupt-" + strconv.FormatInt(time.Now().Unix(), 10)
		if rerr := os.Rename(t.path, aside); rerr != nil {
			t.log.Warn("corrupt BID file, and it cannot be set aside", "path", t.path, "err", err, "rename_err", rerr)
		} else {
			t.log.Warn("corrupt BID file set aside; starting with new BIDs", "path", t.path, "aside", aside, "err", err)
		}
		return
	}
	bids := map[uint16]bool{}
	names := map[string]bool{}
	addrs := map[netip.Addr]bool{}
	for i, r := range f.Records {
		bad := ""
		switch {
		case r == nil:
			bad = "empty"
		case r.BID == 0:
			bad = "BID 0"
		case bids[r.BID]:
			bad = "duplicate BID"
		case r.Kind == kindIface && r.Name == "" && r.MAC == "":
			bad = "interface without name or MAC"
		case r.Kind == kindIface && r.Name != "" && names[r.Name]:
			bad = "duplicate interface name"
		case r.Kind == kindCoA && !is6(r.Addr):
			bad = "care-of address is not IPv6"
		case r.Kind == kindCoA && addrs[r.Addr]:
			bad = "duplicate care-of address"
		case r.Kind != kindIface && r.Kind != kindCoA:
			bad = "unknown kind"
		}
		if bad != "" {
			t.log.Warn("dropping a bad record of the BID file", "path", t.path, "record", i, "why", bad)
			t.dirty = true
			continue
		}
		bids[r.BID] = true
		if r.Kind == kindIface && r.Name != "" {
			names[r.Name] = true
		}
		if r.Kind == kindCoA {
			r.Addr = r.Addr.WithZone("")
			addrs[r.Addr] = true
		}
		t.recs = append(t.recs, r)
	}
}

// save writes the table if it changed. On error it stays dirty, so the next
// round tries again.
func (t *bidTable) save() error {
	if !t.dirty || t.path == "" {
		return nil
	}
	recs := slices.DeleteFunc(slices.Clone(t.recs), func(r *bidRecord) bool { return r.BID == 0 })
	slices.SortFunc(recs, func(a, b *bidRecord) int { return int(a.BID) - int(b.BID) })
	data, err := json.MarshalIndent(bidFile{Version: bidFileVersion, Records: recs}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(t.path, append(data, '\n')); err != nil {
		return fmt.Errorf("iface: saving BIDs: %w", err)
	}
	t.dirty = false
	return nil
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, synced, renamed over path, and the directory synced, so that
// a crash leaves the old file or the new one, never a mix.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// setFixed records the BIDs that rules fix.
func (t *bidTable) setFixed(rules []Rule) {
	clear(t.fixed)
	for _, r := range rules {
		if r.BID != 0 {
			t.fixed[r.BID] = true
		}
	}
}

func (t *bidTable) used() map[uint16]bool {
	u := make(map[uint16]bool, len(t.recs))
	for _, r := range t.recs {
		if r.BID != 0 {
			u[r.BID] = true
		}
	}
	return u
}

// alloc returns a BID that is neither used, fixed nor avoid: random when
// random, else the lowest free one. 0 means none is left.
func (t *bidTable) alloc(used map[uint16]bool, avoid uint16, random bool) uint16 {
	free := func(b uint16) bool { return b != 0 && b != avoid && !used[b] && !t.fixed[b] }
	if random {
		for range 256 {
			if b := t.rnd(); free(b) {
				return b
			}
		}
	}
	for b := 1; b <= 0xffff; b++ {
		if free(uint16(b)) {
			return uint16(b)
		}
	}
	return 0
}

// rotate gives every record whose BID is not fixed a new random BID that
// differs from its old one (privacy, draft section 2).
func (t *bidTable) rotate() {
	used := map[uint16]bool{}
	for _, r := range t.recs {
		if t.fixed[r.BID] {
			used[r.BID] = true
		}
	}
	for _, r := range t.recs {
		if t.fixed[r.BID] {
			continue
		}
		nb := t.alloc(used, r.BID, true)
		r.BID = nb
		used[nb] = true
	}
	t.dirty = true
}

func (t *bidTable) add(r *bidRecord) *bidRecord {
	t.recs = append(t.recs, r)
	t.dirty = true
	return r
}

// begin starts an assignment round; end prunes what the round left.
func (t *bidTable) begin() { t.live = map[*bidRecord]bool{} }

type ifaceKey struct {
	name  string
	mac   string // "" when the link has none
	fixed uint16 // BID fixed by the matching rule
	need  bool   // allocate a BID if it has none
}

// assignInterfaces returns the BID of each interface (0: none, when not
// needed). Interfaces are matched to records by name and MAC, in this
// order: both agree; the MAC alone (a rename; only MACs no other live
// interface shares, so VLANs and their parent are told apart by name); the
// name alone (a re-created veth or replaced card). Renamed or re-created
// records are updated, so that each record keeps both keys.
func (t *bidTable) assignInterfaces(keys []ifaceKey, now time.Time) []uint16 {
	m := t.newIfaceMatch(keys)
	m.byNameAndMAC()
	m.byMACAlone()
	m.byNameAlone()
	m.fixBIDs()
	m.allocate()
	out := make([]uint16, len(keys))
	for i, r := range m.recs {
		if r == nil {
			continue
		}
		out[i] = r.BID
		if r.BID != 0 && now.Sub(r.Seen) >= seenEvery {
			r.Seen = now
			t.dirty = true
		}
	}
	return out
}

// ifaceMatch is one assignInterfaces round: recs[i] is keys[i]'s record.
type ifaceMatch struct {
	t      *bidTable
	keys   []ifaceKey
	recs   []*bidRecord
	byName map[string]*bidRecord
	byMAC  map[string][]*bidRecord
	macs   map[string]int // how many interfaces have each MAC
}

func (t *bidTable) newIfaceMatch(keys []ifaceKey) *ifaceMatch {
	m := &ifaceMatch{t: t, keys: keys, recs: make([]*bidRecord, len(keys)),
		byName: map[string]*bidRecord{}, byMAC: map[string][]*bidRecord{}, macs: map[string]int{}}
	for _, r := range t.recs {
		if r.Kind != kindIface {
			continue
		}
		if r.Name != "" {
			m.byName[r.Name] = r
		}
		if r.MAC != "" {
			m.byMAC[r.MAC] = append(m.byMAC[r.MAC], r)
		}
	}
	for _, k := range keys {
		if k.mac != "" {
			m.macs[k.mac]++
		}
	}
	return m
}

// uniq returns mac if no other interface has it, else "".
func (m *ifaceMatch) uniq(mac string) string {
	if m.macs[mac] == 1 {
		return mac
	}
	return ""
}

func (m *ifaceMatch) claim(i int, r *bidRecord) {
	m.recs[i] = r
	m.t.live[r] = true
}

// free returns the record named name if no interface claimed it yet.
func (m *ifaceMatch) free(name string) *bidRecord {
	if r := m.byName[name]; r != nil && !m.t.live[r] {
		return r
	}
	return nil
}

func (m *ifaceMatch) byNameAndMAC() {
	for i, k := range m.keys {
		if r := m.free(k.name); r != nil && (r.MAC == "" || k.mac == "" || r.MAC == k.mac) {
			m.claim(i, r)
			if r.MAC == "" && m.uniq(k.mac) != "" {
				r.MAC = k.mac
				m.t.dirty = true
			}
		}
	}
}

// byMACAlone matches renamed interfaces.
func (m *ifaceMatch) byMACAlone() {
	for i, k := range m.keys {
		if m.recs[i] != nil || m.uniq(k.mac) == "" {
			continue
		}
		for _, r := range m.byMAC[k.mac] {
			if m.t.live[r] {
				continue
			}
			m.claim(i, r)
			if r.Name != k.name {
				if o := m.free(k.name); o != nil && o != r {
					// A stale record under the new name loses to the
					// renamed interface.
					m.t.remove(o)
				}
				delete(m.byName, r.Name)
				r.Name = k.name
				m.byName[k.name] = r
				m.t.dirty = true
			}
			break
		}
	}
}

// byNameAlone matches re-created interfaces (a new MAC).
func (m *ifaceMatch) byNameAlone() {
	for i, k := range m.keys {
		if m.recs[i] != nil {
			continue
		}
		if r := m.free(k.name); r != nil {
			m.claim(i, r)
			if mac := m.uniq(k.mac); mac != r.MAC {
				r.MAC = mac
				m.t.dirty = true
			}
		}
	}
}

// fixBIDs gives the interfaces their rules' BIDs, taking them from any
// other record; a rule's BID matched by several interfaces goes to the
// first.
func (m *ifaceMatch) fixBIDs() {
	t := m.t
	taken := map[uint16]bool{}
	for i, k := range m.keys {
		r := m.recs[i]
		if k.fixed == 0 || taken[k.fixed] {
			if r != nil && t.fixed[r.BID] && r.BID != 0 {
				r.BID = 0
				t.dirty = true
			}
			continue
		}
		taken[k.fixed] = true
		if r == nil {
			r = t.add(&bidRecord{Kind: kindIface, Name: k.name, MAC: m.uniq(k.mac)})
			m.claim(i, r)
		}
		if r.BID != k.fixed {
			for _, o := range t.recs {
				if o != r && o.BID == k.fixed {
					o.BID = 0
				}
			}
			r.BID = k.fixed
			t.dirty = true
		}
	}
}

// allocate gives a BID to every interface that needs one and has none.
func (m *ifaceMatch) allocate() {
	t := m.t
	used := t.used()
	for i, k := range m.keys {
		if !k.need {
			continue
		}
		r := m.recs[i]
		if r == nil {
			r = t.add(&bidRecord{Kind: kindIface, Name: k.name, MAC: m.uniq(k.mac)})
			m.claim(i, r)
		}
		if r.BID == 0 {
			r.BID = t.alloc(used, 0, t.random)
			used[r.BID] = true
			t.dirty = true
		}
	}
}

// assignAddrs returns the BID of each care-of address (BIDPerCoA). The
// addresses must be distinct.
func (t *bidTable) assignAddrs(addrs []netip.Addr, now time.Time) []uint16 {
	out := make([]uint16, len(addrs))
	byAddr := map[netip.Addr]*bidRecord{}
	for _, r := range t.recs {
		if r.Kind == kindCoA {
			byAddr[r.Addr] = r
		}
	}
	used := t.used()
	for i, a := range addrs {
		r := byAddr[a]
		if r == nil {
			r = t.add(&bidRecord{Kind: kindCoA, Addr: a})
			byAddr[a] = r
		}
		t.live[r] = true
		if r.BID == 0 || t.fixed[r.BID] {
			r.BID = t.alloc(used, 0, t.random)
			used[r.BID] = true
			t.dirty = true
		}
		if now.Sub(r.Seen) >= seenEvery {
			r.Seen = now
			t.dirty = true
		}
		out[i] = r.BID
	}
	return out
}

func (t *bidTable) remove(r *bidRecord) {
	if i := slices.Index(t.recs, r); i >= 0 {
		t.recs = slices.Delete(t.recs, i, i+1)
		t.dirty = true
	}
}

// end drops records without a BID that are not in use, and the least
// recently seen ones beyond maxRecords.
func (t *bidTable) end() {
	n := len(t.recs)
	t.recs = slices.DeleteFunc(t.recs, func(r *bidRecord) bool { return r.BID == 0 && !t.live[r] })
	if over := len(t.recs) - maxRecords; over > 0 {
		old := slices.Clone(t.recs)
		slices.SortStableFunc(old, func(a, b *bidRecord) int { return a.Seen.Compare(b.Seen) })
		drop := map[*bidRecord]bool{}
		for _, r := range old {
			if len(drop) == over {
				break
			}
			if !t.live[r] {
				drop[r] = true
			}
		}
		t.recs = slices.DeleteFunc(t.recs, func(r *bidRecord) bool { return drop[r] })
	}
	if len(t.recs) != n {
		t.dirty = true
	}
	t.live = nil
}
