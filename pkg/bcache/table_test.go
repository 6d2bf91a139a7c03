package bcache

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

func TestHoAStateIsOneCacheLine(t *testing.T) {
	if s := unsafe.Sizeof(hoaState{}); s != 64 {
		t.Fatalf("hoaState is %d octets, want 64", s)
	}
	if s := unsafe.Sizeof(binding{}); s != 32 {
		t.Fatalf("binding is %d octets, want 32", s)
	}
}

// TestTable checks the open-addressing table against a map through random
// inserts and removes, with few distinct hash values too (long probe runs
// that wrap around the end of the table).
func TestTable(t *testing.T) {
	for _, collide := range []bool{false, true} {
		var tab hoaTable
		tab.init()
		r := rand.New(rand.NewPCG(5, 6))
		model := map[[16]byte]uint16{}
		randKey := func() [16]byte {
			var k [16]byte
			k[0], k[1] = 0x20, 0x01
			k[15] = byte(r.IntN(256))
			k[14] = byte(r.IntN(8))
			k[13] = byte(r.IntN(4))
			return k
		}
		key := randKey
		if collide {
			// 150 keys whose home is the last slot of the initial table:
			// one probe run of up to 150 that wraps around (and no growth).
			var pool [][16]byte
			for len(pool) < 150 {
				k := randKey()
				k[12], k[11] = byte(r.IntN(256)), byte(r.IntN(256)) // enough distinct keys
				if tab.hash(&k)&tab.mask == tab.mask && !slices.Contains(pool, k) {
					pool = append(pool, k)
				}
			}
			key = func() [16]byte { return pool[r.IntN(len(pool))] }
		}
		steps := 200000
		if collide {
			steps = 20000
		}
		for i := range steps {
			k := key()
			if _, ok := model[k]; ok && r.IntN(2) == 0 {
				tab.remove(k)
				delete(model, k)
			} else if !ok {
				h := tab.insert(k)
				h.lastSeq = uint16(i)
				model[k] = uint16(i)
			}
			if tab.n != len(model) {
				t.Fatalf("step %d: table has %d, model %d", i, tab.n, len(model))
			}
			if i%97 == 0 {
				for mk, v := range model {
					h := tab.find(mk)
					if h == nil || h.lastSeq != v || h.key != mk {
						t.Fatalf("step %d: %x -> %+v, want %d", i, mk, h, v)
					}
				}
				var absent [16]byte
				absent[0] = 0xfe
				if tab.find(absent) != nil {
					t.Fatal("found an absent key")
				}
			}
		}
		if collide && len(tab.slots) != minTableSize {
			t.Fatalf("table grew to %d", len(tab.slots))
		}
		used := 0
		for i := range tab.slots {
			if tab.slots[i].used {
				used++
			}
		}
		if used != len(model) || 4*used > 3*len(tab.slots) {
			t.Fatalf("%d used slots of %d for %d keys", used, len(tab.slots), len(model))
		}
	}
}
