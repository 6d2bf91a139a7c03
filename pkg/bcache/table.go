package bcache

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
)

// hoaState is everything about one home address. It is one 64-octet slot
// of the table, so that a lookup reads the key and the bindings' slice
// header in one cache line, then the binding itself: two memory accesses.
type hoaState struct {
	key   [16]byte
	binds []binding // sorted by BID
	// tat is the rate limiter's theoretical arrival time (GCRA).
	tat int64
	// sched is the time of this home address's live timer-heap entry
	// (when hasSched); heap entries with another time are stale.
	sched    int64
	hash     uint32 // low bits of the key's hash: its home slot
	lastSeq  uint16 // last accepted sequence number
	used     bool
	hasSched bool
}

// hoaTable maps home addresses to their state: open addressing with linear
// probing and backward-shift deletion (no tombstones), at most 3/4 full.
// Slots move on insertion (growth) and deletion: hold no *hoaState across
// either. The hash is keyed with a random seed, so that a client choosing
// home addresses cannot make the probes long.
type hoaTable struct {
	slots []hoaState
	mask  uint32
	n     int
	seed  [2]uint64
}

const minTableSize = 256

func (t *hoaTable) init() {
	var s [16]byte
	_, _ = rand.Read(s[:]) // never fails (crypto/rand, Go 1.24+)
	t.seed = [2]uint64{binary.LittleEndian.Uint64(s[:8]) | 1, binary.LittleEndian.Uint64(s[8:])}
	t.slots = make([]hoaState, minTableSize)
	t.mask = minTableSize - 1
}

func (t *hoaTable) hash(k *[16]byte) uint32 {
	hi := binary.BigEndian.Uint64(k[:8])
	lo := binary.BigEndian.Uint64(k[8:])
	a, b := bits.Mul64(lo^t.seed[0], hi^t.seed[1])
	a, b = bits.Mul64(a^b, 0x9e3779b97f4a7c15)
	return uint32(a ^ b)
}

// find returns the slot of k, or nil.
func (t *hoaTable) find(k [16]byte) *hoaState {
	for i := t.hash(&k) & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if !s.used {
			return nil
		}
		if s.key == k {
			return s
		}
	}
}

// insert adds k, which must be absent, and returns its zeroed slot.
func (t *hoaTable) insert(k [16]byte) *hoaState {
	if 4*(t.n+1) > 3*len(t.slots) {
		t.grow()
	}
	h := t.hash(&k)
	i := h & t.mask
	for t.slots[i].used {
		i = (i + 1) & t.mask
	}
	t.slots[i] = hoaState{key: k, hash: h, used: true}
	t.n++
	return &t.slots[i]
}

func (t *hoaTable) grow() {
	old := t.slots
	t.slots = make([]hoaState, 2*len(old))
	t.mask = uint32(len(t.slots) - 1)
	for i := range old {
		if !old[i].used {
			continue
		}
		j := old[i].hash & t.mask
		for t.slots[j].used {
			j = (j + 1) & t.mask
		}
		t.slots[j] = old[i]
	}
}

// remove deletes k if present, shifting back the entries of its probe run.
func (t *hoaTable) remove(k [16]byte) {
	i := t.hash(&k) & t.mask
	for {
		if !t.slots[i].used {
			return
		}
		if t.slots[i].key == k {
			break
		}
		i = (i + 1) & t.mask
	}
	t.n--
	for j := i; ; {
		t.slots[i] = hoaState{}
		for {
			j = (j + 1) & t.mask
			if !t.slots[j].used {
				return
			}
			// The entry at j may fill the hole at i unless its home slot
			// lies cyclically in (i, j].
			home := t.slots[j].hash & t.mask
			if (j-home)&t.mask >= (j-i)&t.mask {
				t.slots[i] = t.slots[j]
				i = j
				break
			}
		}
	}
}
