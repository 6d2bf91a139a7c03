package mn

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcoad/mcoad/internal/service"
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/mhsock"
	"github.com/mcoad/mcoad/pkg/proto"
)

// homeAgent is a recording Transport that answers every Binding Update
// as an accepting home agent does.
type homeAgent struct {
	in   chan mhsock.Received
	mu   sync.Mutex
	sent []proto.Packet
}

func (h *homeAgent) Send(p *proto.Packet, _ proto.Signer) error {
	c := *p
	c.MH.Options.BIDs = slices.Clone(p.MH.Options.BIDs)
	h.mu.Lock()
	h.sent = append(h.sent, c)
	h.mu.Unlock()
	if p.MH.Type != proto.TypeBU {
		return nil
	}
	var r mhsock.Received
	r.Packet = proto.Packet{Src: p.Dst, Dst: p.Src}
	if p.Src != p.HomeAddress && p.HomeAddress.IsValid() {
		r.Packet.RoutingHome = p.HomeAddress
	}
	r.Packet.MH = proto.Message{Type: proto.TypeBA, Sequence: p.MH.Sequence, Lifetime: p.MH.Lifetime,
		Options: proto.Options{BIDs: slices.Clone(p.MH.Options.BIDs)}}
	for i := range r.Packet.MH.Options.BIDs {
		r.Packet.MH.Options.BIDs[i].PrioStatus = 0
	}
	go func() { h.in <- r }()
	return nil
}

func (h *homeAgent) Recv(ctx context.Context, r *mhsock.Received) error {
	select {
	case v := <-h.in:
		*r = v
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bus returns the Binding Updates sent so far, by lifetime: registrations
// (lifetime > 0) and de-registrations.
func (h *homeAgent) bus() (reg, dereg int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.sent {
		switch {
		case p.MH.Type != proto.TypeBU:
		case p.MH.Lifetime > 0:
			reg++
		default:
			dereg++
		}
	}
	return reg, dereg
}

// mcoad as its main function builds it (New) and runs it (Run), over a
// recording transport and a fake kernel: it registers its care-of
// address, and de-registers it when it stops.
func TestDaemonRegistersAndDeregistersOnStop(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mcoad.toml")
	text := testConfig(dir, defaultRules) + "\n[dataplane]\nbackend = \"none\"\n"
	text = strings.Replace(text, "[mobile_node]\n", "[mobile_node]\nliveness = false\n", 1)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadMN(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	k := &fakeKernel{}
	k.addLink(2, "eth0", "2001:db8:1::2/64")
	ha := &homeAgent{in: make(chan mhsock.Received)}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := New(cfg, Deps{Command: service.Command{ConfigPath: path, Logger: log}, Transport: ha, Netlink: k, DBusAddress: NoDBus})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()
	select {
	case <-d.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	eventually(t, "the care-of address to register", func() bool {
		bs, _ := d.Bindings(context.Background())
		return len(bs) == 1 && bs[0].State == "registered" && bs[0].Interface == "eth0"
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if reg, dereg := ha.bus(); reg < 1 || dereg != 1 {
		t.Fatalf("%d registrations and %d de-registrations sent, want some and 1", reg, dereg)
	}
}
