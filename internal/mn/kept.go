package mn

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mcoad/mcoad/pkg/bul"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/ebpf"
	"github.com/mcoad/mcoad/pkg/dataplane/tun"
	"github.com/mcoad/mcoad/pkg/policy"
)

// A restart that keeps the bindings keeps the data plane too: the TUN
// devices (persistent), their routes, the home address, the ip rules and
// the nftables table stay, and keptFile in state_dir says what was kept
// and why. The next process adopts them before its first registration, so
// that the home agent's packets flow again as soon as it reads them;
// `mcoad -cleanup` leaves them alone once after a restart (systemd's
// ExecStopPost runs between the two processes) and removes them otherwise.

// keptFile is the marker's name in state_dir.
const keptFile = "dataplane-kept.json"

// keptWait is how long the adopted tunnels are kept without their BIDs'
// bindings registered again.
const keptWait = 3 * time.Second

func keptPath(stateDir string) string { return filepath.Join(stateDir, keptFile) }

// keptState is keptFile's content.
type keptState struct {
	Format int       `json:"format"`
	Reason string    `json:"reason"` // keepRestart, keepConfigured
	Time   time.Time `json:"time"`
	PID    int       `json:"pid"`
	// The data plane's (dataplane.Config), which the next one must match.
	Backend     string     `json:"backend"`
	BPFDir      string     `json:"bpf_dir,omitempty"` // ebpf's pins
	HomeDevice  string     `json:"home_device"`
	HomeAddress netip.Addr `json:"home_address"`
	HomeAgent   netip.Addr `json:"home_agent"`
	// The flow policy's (policy.Config).
	Mark      uint32 `json:"mark"`
	Mask      uint32 `json:"mask"`
	TableBase uint32 `json:"table_base"`
	NFTable   string `json:"nftable"`

	Tunnels        []keptTunnel `json:"tunnels"`
	CleanupSkipped bool         `json:"cleanup_skipped,omitempty"` // `mcoad -cleanup` left it alone once
}

type keptTunnel struct {
	BID       uint16     `json:"bid"`
	Interface string     `json:"interface"`
	Ifindex   int        `json:"ifindex"`
	CoA       netip.Addr `json:"coa"`
	MTU       int        `json:"mtu"`
	Priority  uint8      `json:"priority"`
}

// readKept reads the marker; nil when there is none (or it is unreadable,
// which is logged: the kept devices are then made again or removed).
func readKept(stateDir string, log *slog.Logger) *keptState {
	if stateDir == "" {
		return nil
	}
	b, err := os.ReadFile(keptPath(stateDir))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("kept data plane", "err", err)
		}
		return nil
	}
	var k keptState
	if err := json.Unmarshal(b, &k); err != nil || k.Format != 1 {
		log.Warn("kept data plane: unreadable marker: not adopted", "file", keptPath(stateDir), "err", err)
		os.Remove(keptPath(stateDir))
		return nil
	}
	return &k
}

// matches tells whether this configuration can adopt what was kept.
func (k *keptState) matches(cfg *config.MN) bool {
	dc, mnc := cfg.Dataplane, cfg.MobileNode
	sameBackend := k.Backend == tun.Name && (dc.Backend == config.BackendTUN || dc.Backend == config.BackendAuto) ||
		k.Backend == ebpf.Name && dc.Backend == config.BackendEBPF && k.BPFDir == dc.BPFDir
	return sameBackend && k.HomeDevice == config.DefaultHomeDevice &&
		k.HomeAddress == mnc.HomeAddress && k.HomeAgent == mnc.HomeAgent &&
		k.Mark == dc.Mark && k.Mask == dc.Mask && k.TableBase == dc.TableBase && k.NFTable == config.DefaultNFTable
}

// adopt is the tunnels for dataplane.Config.Adopt.
func (k *keptState) adopt(cfg *config.MN) []dataplane.Tunnel {
	out := make([]dataplane.Tunnel, 0, len(k.Tunnels))
	for _, t := range k.Tunnels {
		out = append(out, dataplane.Tunnel{BID: t.BID, Iface: t.Interface, Ifindex: t.Ifindex, CoA: t.CoA,
			HA: cfg.MobileNode.HomeAgent, HoA: cfg.MobileNode.HomeAddress, MTU: t.MTU})
	}
	return out
}

func (k *keptState) bids() []uint16 {
	out := make([]uint16, 0, len(k.Tunnels))
	for _, t := range k.Tunnels {
		out = append(out, t.BID)
	}
	return out
}

// discard removes what was kept and the marker (no process adopts it).
func (k *keptState) discard(log *slog.Logger) {
	if err := tun.DiscardKept(k.HomeDevice, k.bids()); err != nil {
		log.Warn("kept data plane", "err", err)
	}
	if k.Backend == ebpf.Name {
		if err := ebpf.Discard(k.BPFDir, k.TableBase); err != nil {
			log.Warn("kept data plane", "err", err)
		}
	}
	if err := policy.Cleanup(&policy.Config{Mark: k.Mark, Mask: k.Mask, TableBase: k.TableBase, NFTable: k.NFTable}); err != nil {
		log.Warn("kept data plane", "err", err)
	}
}

// keptPending are the adopted tunnels still wanted, as entries: those
// whose BIDs have not registered again yet (the engine's snapshot has
// none, or their BU, from the same care-of address, is in flight), until
// keptUntil. A BID registered, refused or moved is no longer the kept
// one's. Under mu.
func (p *dataPath) keptPending(snap []bul.Entry, now time.Time) []bul.Entry {
	if len(p.kept) == 0 {
		return nil
	}
	if now.After(p.keptUntil) {
		p.log.Info("kept tunnels not registered again in time: removed", "bids", len(p.kept))
		p.kept = nil
		return nil
	}
	var out []bul.Entry
	for bid, k := range p.kept {
		e, ok := haEntry(snap, bid)
		if ok && (e.State != bul.StatePending || e.CoA != k.CoA || e.Interface != k.Interface) {
			delete(p.kept, bid)
			continue
		}
		out = append(out, bul.Entry{Role: bul.RoleHA, BID: bid, TunnelBID: bid, Interface: k.Interface, CoA: k.CoA, Priority: k.Priority, State: bul.StatePending})
	}
	return out
}

// haEntry is the home agent binding of bid in snap.
func haEntry(snap []bul.Entry, bid uint16) (bul.Entry, bool) {
	for _, e := range snap {
		if e.Role == bul.RoleHA && e.BID == bid {
			return e, true
		}
	}
	return bul.Entry{}, false
}

// keepAll keeps the data plane for the next process and writes the
// marker. It reports false when the backend cannot keep (close then
// removes everything); what it kept but could not record it removes.
func (p *dataPath) keepAll() bool {
	kb, ok := p.backend.(dataplane.Keeper)
	if !ok {
		return false
	}
	tunnels, err := kb.Keep() // the backend is closed now
	if err != nil {
		p.log.Warn("data plane not kept whole", "err", err)
	}
	if len(tunnels) == 0 {
		if err := p.pol.Close(); err != nil {
			p.log.Warn("flow policy cleanup", "err", err)
		}
		return true
	}
	if err := p.pol.Keep(); err != nil {
		p.log.Warn("flow policy", "err", err)
	}
	k := &keptState{Format: 1, Reason: p.keep, Time: time.Now().UTC(), PID: os.Getpid(), Backend: p.backend.Name(),
		BPFDir: p.dpCfg.BPFDir, HomeDevice: p.dpCfg.HomeDevice, HomeAddress: p.hoa, HomeAgent: p.ha,
		Mark: p.polCfg.Mark, Mask: p.polCfg.Mask, TableBase: p.polCfg.TableBase, NFTable: config.DefaultNFTable}
	if k.HomeDevice == "" {
		k.HomeDevice = config.DefaultHomeDevice
	}
	snap := p.bul.Snapshot()
	p.mu.Lock()
	for _, t := range tunnels {
		var prio uint8
		if i := slices.IndexFunc(snap, func(e bul.Entry) bool { return e.Role == bul.RoleHA && e.TunnelBID == t.BID }); i >= 0 {
			prio = snap[i].Priority
		} else if kt, ok := p.kept[t.BID]; ok {
			prio = kt.Priority
		}
		k.Tunnels = append(k.Tunnels, keptTunnel{BID: t.BID, Interface: t.Iface, Ifindex: t.Ifindex, CoA: t.CoA, MTU: t.MTU, Priority: prio})
	}
	p.mu.Unlock()
	if err := writeKept(p.stateDir, k); err != nil {
		p.log.Warn("kept data plane not recorded: removing it", "err", err)
		k.discard(p.log)
		return true
	}
	p.log.Info("data plane kept for the next process", "reason", p.keep, "tunnels", len(k.Tunnels))
	return true
}

// writeKept writes the marker atomically.
func writeKept(stateDir string, k *keptState) error {
	if stateDir == "" {
		return errors.New("no state directory")
	}
	b, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return err
	}
	tmp := keptPath(stateDir) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, keptPath(stateDir))
}

// SkipCleanup is `mcoad -cleanup`'s question: true once after a restart
// that kept the data plane for the next process (systemd runs
// ExecStopPost between the two), which is then left alone; false when
// everything is to be removed (and the marker goes with it).
func SkipCleanup(stateDir string, log *slog.Logger) bool {
	k := readKept(stateDir, log)
	if k == nil {
		return false
	}
	if k.Reason == keepRestart && !k.CleanupSkipped {
		k.CleanupSkipped = true
		if err := writeKept(stateDir, k); err == nil {
			return true
		}
	}
	os.Remove(keptPath(stateDir))
	return false
}
