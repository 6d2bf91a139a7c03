// Package sdjob asks systemd, over D-Bus, why it is stopping a service's
// main process. systemd sends the same SIGTERM for `systemctl stop` and for
// `systemctl restart` (or a package upgrade's try-restart); only the job
// queued on the unit tells them apart, and a daemon that keeps its state
// across a restart must know which it is.
package sdjob

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/godbus/dbus/v5"
)

// systemd's D-Bus names (org.freedesktop.systemd1(5)).
const (
	BusName          = "org.freedesktop.systemd1"
	ManagerPath      = dbus.ObjectPath("/org/freedesktop/systemd1")
	ManagerInterface = "org.freedesktop.systemd1.Manager"
	UnitInterface    = "org.freedesktop.systemd1.Unit"
	ServiceInterface = "org.freedesktop.systemd1.Service"
	JobInterface     = "org.freedesktop.systemd1.Job"

	propsGet = "org.freedesktop.DBus.Properties.Get"
)

// Reason is why the service manager stops the process.
type Reason string

const (
	// Unknown: not a service's main process, no job on the unit (a
	// plain kill), or systemd did not answer. The caller does what it
	// did before it could ask.
	Unknown Reason = "unknown"
	// Restart: the unit is stopped to be started again at once
	// (restart, try-restart, reload-or-restart).
	Restart Reason = "restart"
	// Stop: the unit is stopped for good.
	Stop Reason = "stop"
	// Shutdown: the whole system is going down.
	Shutdown Reason = "shutdown"
)

// Verdict is a Reason and what it was read from, for the log.
type Verdict struct {
	Reason Reason
	Unit   string // the unit's name, "" when unknown
	Job    string // the job's type, "" without a job
}

// Ask reads, on conn (the system bus), the job systemd runs on the unit
// whose main process is pid. An error means the answer is Unknown.
func Ask(ctx context.Context, conn *dbus.Conn, pid int) (Verdict, error) {
	v := Verdict{Reason: Unknown}
	mgr := conn.Object(BusName, ManagerPath)
	var unit dbus.ObjectPath
	if err := mgr.CallWithContext(ctx, ManagerInterface+".GetUnitByPID", 0, uint32(pid)).Store(&unit); err != nil {
		return v, fmt.Errorf("sdjob: GetUnitByPID(%d): %w", pid, err)
	}
	uo := conn.Object(BusName, unit)
	var id string
	if err := getProp(ctx, uo, UnitInterface, "Id", &id); err != nil {
		return v, err
	}
	v.Unit = id
	// A process merely inside the unit (a test run under a service
	// manager, a helper) must not read its unit's job as its own.
	var main uint32
	if err := getProp(ctx, uo, ServiceInterface, "MainPID", &main); err != nil {
		return v, err
	}
	if int(main) != pid {
		return v, fmt.Errorf("sdjob: pid %d is not the main process of %s (%d)", pid, id, main)
	}
	var state string
	if err := getProp(ctx, mgr, ManagerInterface, "SystemState", &state); err != nil {
		return v, err
	}
	// The unit's job during a shutdown is a plain stop anyway; the
	// system state says it first.
	if state == "stopping" {
		v.Reason = Shutdown
		return v, nil
	}
	var job struct {
		ID   uint32
		Path dbus.ObjectPath
	}
	if err := getProp(ctx, uo, UnitInterface, "Job", &job); err != nil {
		return v, err
	}
	if job.ID == 0 {
		return v, nil // no job: a kill from outside systemctl
	}
	var typ string
	if err := getProp(ctx, conn.Object(BusName, job.Path), JobInterface, "JobType", &typ); err != nil {
		return v, err
	}
	v.Job = typ
	v.Reason = reasonOf(typ)
	return v, nil
}

// reasonOf maps a job type (systemd's job_type_to_string) to a Reason.
// try-restart and reload-or-restart collapse into restart on an active
// unit; they are listed in case a version shows them as queued.
func reasonOf(jobType string) Reason {
	switch jobType {
	case "restart", "try-restart", "reload-or-restart":
		return Restart
	case "stop":
		return Stop
	}
	return Unknown
}

func getProp(ctx context.Context, o dbus.BusObject, iface, name string, out any) error {
	var v dbus.Variant
	if err := o.CallWithContext(ctx, propsGet, 0, iface, name).Store(&v); err != nil {
		return fmt.Errorf("sdjob: %s.%s of %s: %w", iface, name, o.Path(), err)
	}
	if err := dbus.Store([]any{v.Value()}, out); err != nil {
		return fmt.Errorf("sdjob: %s.%s of %s: %w", iface, name, o.Path(), err)
	}
	return nil
}

// Client asks about this process over its own connection to a bus, opened
// per question: the question comes once, at stop, and a connection kept
// open for it would have to survive the bus restarting in between.
type Client struct {
	// Address of the bus; "" is the system bus.
	Address string
	// PID of the process asked about; 0 is this process.
	PID int
}

// ErrNoBus wraps a failure to reach the bus.
var ErrNoBus = errors.New("sdjob: no bus")

// Ask connects, asks (the package's Ask) and disconnects.
func (c *Client) Ask(ctx context.Context) (Verdict, error) {
	var (
		conn *dbus.Conn
		err  error
	)
	if c.Address == "" {
		conn, err = dbus.ConnectSystemBus(dbus.WithContext(ctx))
	} else {
		conn, err = dbus.Connect(c.Address, dbus.WithContext(ctx))
	}
	if err != nil {
		return Verdict{Reason: Unknown}, fmt.Errorf("%w: %w", ErrNoBus, err)
	}
	defer conn.Close()
	pid := c.PID
	if pid == 0 {
		pid = os.Getpid()
	}
	return Ask(ctx, conn, pid)
}
