package bpftun

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// A restart keeps the tunnels: the routes hold their encap programs, which
// hold the maps; the maps and the uplinks' tc links are pinned in a bpffs
// directory so that the next process takes them over (LoadPinned,
// AdoptIngress) before anything changes.

// Pin pins every map under dir (a bpffs directory) for the next process.
func (p *Programs) Pin(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, m := range p.maps() {
		if err := m.Pin(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pinning map %s: %w", name, err)
		}
	}
	return nil
}

// LoadPinned loads the programs over the maps a previous process pinned
// under dir, and removes the pins: this process holds the maps now. An
// error wrapping os.ErrNotExist means nothing was kept.
func LoadPinned(dir string) (*Programs, error) {
	spec, err := loadTunnel()
	if err != nil {
		return nil, err
	}
	pinned := map[string]*ebpf.Map{}
	defer func() {
		for _, m := range pinned {
			m.Close() // the programs hold clones
		}
	}()
	for name := range (&Programs{}).maps() {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if err != nil {
			return nil, fmt.Errorf("kept map %s: %w", name, err)
		}
		pinned[name] = m
	}
	p := &Programs{spec: spec, encaps: map[uint32]*ebpf.Program{}}
	var objs struct {
		tunnelMaps
		Decap *ebpf.Program `ebpf:"decap"`
		ROOut *ebpf.Program `ebpf:"ro_out"`
	}
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: pinned}); err != nil {
		return nil, fmt.Errorf("loading the tunnel programs over the kept maps: %w", err)
	}
	p.objs.tunnelMaps = objs.tunnelMaps
	p.objs.Decap, p.objs.RoOut = objs.Decap, objs.ROOut
	for name := range pinned {
		os.Remove(filepath.Join(dir, name))
	}
	return p, nil
}

// PinLink pins a tc link (AttachIngress) under dir as name, so that it
// outlives this process.
func PinLink(l link.Link, dir, name string) error {
	return l.Pin(filepath.Join(dir, name))
}

// AdoptLink takes over the link a previous process pinned under dir as
// name, runs prog on it from now on (an atomic swap: no packet misses a
// program) and removes the pin.
func AdoptLink(dir, name string, prog *ebpf.Program) (link.Link, error) {
	path := filepath.Join(dir, name)
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return nil, err
	}
	if err := l.Update(prog); err != nil {
		l.Close()
		return nil, fmt.Errorf("kept link %s: %w", name, err)
	}
	return l, errors.Join(l.Unpin())
}
