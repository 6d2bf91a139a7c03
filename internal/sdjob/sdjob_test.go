package sdjob

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/mcoad/mcoad/pkg/nm/nmtest"
)

// fakeSystemd plays org.freedesktop.systemd1 on a private bus with what
// Ask reads: GetUnitByPID, the manager's SystemState, a unit's Id, Job and
// MainPID, and a job's JobType, as systemd documents them.
type fakeSystemd struct {
	mu      sync.Mutex
	state   string
	unitPID map[uint32]dbus.ObjectPath
	mainPID uint32
	jobType string // "" no job
}

const (
	unitPath = dbus.ObjectPath("/org/freedesktop/systemd1/unit/mcoad_2eservice")
	jobPath  = dbus.ObjectPath("/org/freedesktop/systemd1/job/4242")
)

func startFake(t *testing.T, addr string, f *fakeSystemd) {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(conn.ExportMethodTable(map[string]any{
		"GetUnitByPID": func(pid uint32) (dbus.ObjectPath, *dbus.Error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if p, ok := f.unitPID[pid]; ok {
				return p, nil
			}
			return "", dbus.NewError("org.freedesktop.systemd1.NoUnitForPID", []any{fmt.Sprintf("PID %d does not belong to any loaded unit.", pid)})
		},
	}, ManagerPath, ManagerInterface))
	props := func(get func(iface, name string) (any, bool)) map[string]any {
		return map[string]any{"Get": func(iface, name string) (dbus.Variant, *dbus.Error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			v, ok := get(iface, name)
			if !ok {
				return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{iface + "." + name})
			}
			return dbus.MakeVariant(v), nil
		}}
	}
	must(conn.ExportMethodTable(props(func(iface, name string) (any, bool) {
		if iface == ManagerInterface && name == "SystemState" {
			return f.state, true
		}
		return nil, false
	}), ManagerPath, "org.freedesktop.DBus.Properties"))
	must(conn.ExportMethodTable(props(func(iface, name string) (any, bool) {
		switch iface + "." + name {
		case UnitInterface + ".Id":
			return "mcoad.service", true
		case ServiceInterface + ".MainPID":
			return f.mainPID, true
		case UnitInterface + ".Job":
			// (uo): (0, "/") without a job.
			type job struct {
				ID   uint32
				Path dbus.ObjectPath
			}
			if f.jobType == "" {
				return job{0, "/"}, true
			}
			return job{4242, jobPath}, true
		}
		return nil, false
	}), unitPath, "org.freedesktop.DBus.Properties"))
	must(conn.ExportMethodTable(props(func(iface, name string) (any, bool) {
		if iface == JobInterface && name == "JobType" && f.jobType != "" {
			return f.jobType, true
		}
		return nil, false
	}), jobPath, "org.freedesktop.DBus.Properties"))
	if r, err := conn.RequestName(BusName, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("fake systemd: RequestName: %v %v", r, err)
	}
}

func TestAsk(t *testing.T) {
	addr := nmtest.StartBus(t, "", "")
	const pid = 4711
	f := &fakeSystemd{state: "running", unitPID: map[uint32]dbus.ObjectPath{pid: unitPath}, mainPID: pid}
	startFake(t, addr, f)
	c := &Client{Address: addr, PID: pid}
	for _, tc := range []struct {
		state, job string
		mainPID    uint32
		want       Reason
		wantErr    bool
	}{
		{state: "running", job: "restart", want: Restart},
		{state: "running", job: "try-restart", want: Restart},
		{state: "running", job: "reload-or-restart", want: Restart},
		{state: "running", job: "stop", want: Stop},
		{state: "degraded", job: "stop", want: Stop},
		// A kill from outside systemctl: no job.
		{state: "running", job: "", want: Unknown},
		{state: "running", job: "reload", want: Unknown},
		// Shutdown: the system state decides, whatever the unit's job.
		{state: "stopping", job: "stop", want: Shutdown},
		{state: "stopping", job: "restart", want: Shutdown},
		// A process of the unit that is not its main one.
		{state: "running", job: "restart", mainPID: pid + 1, want: Unknown, wantErr: true},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.state, tc.job), func(t *testing.T) {
			f.mu.Lock()
			f.state, f.jobType, f.mainPID = tc.state, tc.job, pid
			if tc.mainPID != 0 {
				f.mainPID = tc.mainPID
			}
			f.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			v, err := c.Ask(ctx)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Ask: %+v, %v (want error: %v)", v, err, tc.wantErr)
			}
			if v.Reason != tc.want {
				t.Fatalf("Ask = %+v, want %s", v, tc.want)
			}
			if err == nil && (v.Unit != "mcoad.service" || v.Job != tc.job && v.Reason != Shutdown) {
				t.Fatalf("Ask = %+v: unit or job not reported", v)
			}
		})
	}
}

// TestAskNotAUnit: a process systemd does not know (the lab, a shell).
func TestAskNotAUnit(t *testing.T) {
	addr := nmtest.StartBus(t, "", "")
	startFake(t, addr, &fakeSystemd{state: "running", unitPID: map[uint32]dbus.ObjectPath{}})
	v, err := (&Client{Address: addr}).Ask(context.Background())
	if err == nil || v.Reason != Unknown {
		t.Fatalf("Ask = %+v, %v; want Unknown and an error", v, err)
	}
}

// TestAskNoSystemd: a bus without systemd on it, and no bus at all.
func TestAskNoSystemd(t *testing.T) {
	addr := nmtest.StartBus(t, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := (&Client{Address: addr}).Ask(ctx)
	if err == nil || v.Reason != Unknown {
		t.Fatalf("no systemd: Ask = %+v, %v", v, err)
	}
	v, err = (&Client{Address: "unix:path=" + t.TempDir() + "/none"}).Ask(ctx)
	if !errors.Is(err, ErrNoBus) || v.Reason != Unknown {
		t.Fatalf("no bus: Ask = %+v, %v", v, err)
	}
}
