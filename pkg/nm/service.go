package nm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/mcoad/mcoad/pkg/control"
)

// The service's names on the bus.
const (
	BusName    = "org.mcoad.MobileNode1"
	ObjectPath = dbus.ObjectPath("/org/mcoad/MobileNode1")
	Interface  = "org.mcoad.MobileNode1"
	// SignalBindingChanged is the full name of the binding signal, as
	// conn.Emit and match rules want it.
	SignalBindingChanged = Interface + ".BindingChanged"
)

// D-Bus error names of the service's own errors.
const (
	ErrorNotFound = Interface + ".Error.NotFound"
	ErrorConflict = Interface + ".Error.Conflict"
)

// Standard D-Bus error names the service uses.
const (
	errorInvalidArgs  = "org.freedesktop.DBus.Error.InvalidArgs"
	errorAccessDenied = "org.freedesktop.DBus.Error.AccessDenied"
	errorFailed       = "org.freedesktop.DBus.Error.Failed"
)

// ErrNameTaken is returned by Serve when another connection owns BusName.
var ErrNameTaken = errors.New("nm: the bus name is owned by another process")

// Backend is what the service calls: the part of control.MNBackend that
// D-Bus mirrors (mcoad's daemon implements it).
type Backend interface {
	Status(ctx context.Context) (control.Status, error)
	Bindings(ctx context.Context) ([]control.Binding, error)
	Interfaces(ctx context.Context) ([]control.Interface, error)
	Register(ctx context.Context, bids []uint16) error
	Deregister(ctx context.Context, bids []uint16, all bool) error
	SetPriority(ctx context.Context, bid uint16, prio uint8) error
	Reload(ctx context.Context) error
	Hint(ctx context.Context, kind, iface string) error
}

// ServiceConfig configures Serve.
type ServiceConfig struct {
	Conn    *dbus.Conn // required; Serve does not close it
	Backend Backend    // required
	// Events, when set, is followed for binding changes, each of which is
	// emitted as BindingChanged.
	Events *control.Events
	// CallTimeout bounds each method call (default 30 s, as mcoactl's).
	CallTimeout time.Duration
	Logger      *slog.Logger
}

// DefaultCallTimeout bounds a method call when ServiceConfig.CallTimeout is
// zero.
const DefaultCallTimeout = 30 * time.Second

// Serve exports the service on cfg.Conn, takes BusName, and emits
// BindingChanged for every binding event until ctx is done; then it gives
// the name back and unexports. It returns ErrNameTaken (wrapped) when the
// name is owned by someone else, and an error when the bus refuses the
// name (the policy file is missing or the caller is not root).
func Serve(ctx context.Context, cfg ServiceConfig) error {
	if cfg.Conn == nil || cfg.Backend == nil {
		return errors.New("nm: Serve needs a connection and a backend")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &service{cfg: cfg, ctx: ctx}
	conn := cfg.Conn
	if err := s.export(); err != nil {
		return err
	}
	defer s.unexport()

	// Subscribe before taking the name: whoever sees the name can rely on
	// the signals that follow.
	var sub *control.Subscription
	if cfg.Events != nil {
		sub = cfg.Events.Subscribe()
		defer sub.Close()
	}
	reply, err := conn.RequestName(BusName, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("nm: own %s: %w", BusName, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner && reply != dbus.RequestNameReplyAlreadyOwner {
		return fmt.Errorf("nm: own %s: %w", BusName, ErrNameTaken)
	}
	defer func() {
		if conn.Connected() {
			conn.ReleaseName(BusName)
		}
	}()
	cfg.Logger.Debug("D-Bus service running", "name", BusName, "path", ObjectPath)

	// A closed connection ends the service like a done ctx, but is an
	// error: the caller may want to connect again.
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(conn.Context(), cancel)()
	closed := func() error {
		if ctx.Err() == nil && conn.Context().Err() != nil {
			return errors.New("nm: D-Bus connection closed")
		}
		return nil
	}
	if sub == nil {
		<-connCtx.Done()
		return closed()
	}
	for {
		ev, err := sub.Next(connCtx)
		if err != nil {
			if connCtx.Err() != nil {
				return closed()
			}
			if errors.Is(err, control.ErrEventsClosed) {
				<-connCtx.Done() // the daemon is stopping; stay on the bus until told
				return closed()
			}
			return err
		}
		if err := s.emit(ev); err != nil {
			if errors.Is(err, dbus.ErrClosed) || !conn.Connected() {
				return errors.New("nm: D-Bus connection closed")
			}
			cfg.Logger.Warn("D-Bus signal not sent", "err", err)
		}
	}
}

type service struct {
	cfg ServiceConfig
	ctx context.Context // Serve's: calls end with it
}

// emit turns one event of the broker into a signal; events other than
// binding changes are not signalled.
func (s *service) emit(ev control.Event) error {
	switch ev.Kind {
	case control.EventBinding:
		if ev.Binding == nil {
			return nil
		}
		js, err := json.Marshal(ev.Binding)
		if err != nil {
			return err
		}
		return s.cfg.Conn.Emit(ObjectPath, SignalBindingChanged, ev.Binding.BID, ev.Binding.State, ev.Removed, string(js))
	case control.EventLost:
		s.cfg.Logger.Debug("D-Bus: binding events lost", "n", ev.Lost)
	}
	return nil
}

// export puts the methods, the introspection data and the empty parent
// nodes (so that `busctl tree` finds the object) on the connection.
func (s *service) export() error {
	conn := s.cfg.Conn
	if err := conn.ExportMethodTable(s.methods(), ObjectPath, Interface); err != nil {
		return fmt.Errorf("nm: export: %w", err)
	}
	if err := conn.Export(introspect.NewIntrospectable(introspectNode()), ObjectPath, "org.freedesktop.DBus.Introspectable"); err != nil {
		return fmt.Errorf("nm: export: %w", err)
	}
	for _, p := range parentNodes() {
		n := &introspect.Node{Children: []introspect.Node{{Name: p.child}}}
		if err := conn.Export(introspect.NewIntrospectable(n), p.path, "org.freedesktop.DBus.Introspectable"); err != nil {
			return fmt.Errorf("nm: export: %w", err)
		}
	}
	return nil
}

func (s *service) unexport() {
	conn := s.cfg.Conn
	conn.ExportMethodTable(nil, ObjectPath, Interface)
	conn.Export(nil, ObjectPath, "org.freedesktop.DBus.Introspectable")
	for _, p := range parentNodes() {
		conn.Export(nil, p.path, "org.freedesktop.DBus.Introspectable")
	}
}

type parentNode struct {
	path  dbus.ObjectPath
	child string
}

// parentNodes are "/", "/org" and "/org/mcoad", each naming its child.
func parentNodes() []parentNode {
	return []parentNode{{"/", "org"}, {"/org", "mcoad"}, {"/org/mcoad", "MobileNode1"}}
}

// methods is the method table; the names and signatures must match
// introspectNode (TestIntrospectionMatchesMethods checks it).
func (s *service) methods() map[string]any {
	return map[string]any{
		"Status": func(snd dbus.Sender) (string, *dbus.Error) {
			return s.read(snd, "Status", func(ctx context.Context) (any, error) { return s.cfg.Backend.Status(ctx) })
		},
		"Bindings": func(snd dbus.Sender) (string, *dbus.Error) {
			return s.read(snd, "Bindings", func(ctx context.Context) (any, error) {
				bs, err := s.cfg.Backend.Bindings(ctx)
				if bs == nil {
					bs = []control.Binding{} // [] rather than null, as the HTTP API
				}
				return bs, err
			})
		},
		"Interfaces": func(snd dbus.Sender) (string, *dbus.Error) {
			return s.read(snd, "Interfaces", func(ctx context.Context) (any, error) {
				is, err := s.cfg.Backend.Interfaces(ctx)
				if is == nil {
					is = []control.Interface{}
				}
				return is, err
			})
		},
		"Register": func(snd dbus.Sender, bids []uint16) *dbus.Error {
			return s.call(snd, "Register", func(ctx context.Context) error { return s.cfg.Backend.Register(ctx, bids) })
		},
		"Deregister": func(snd dbus.Sender, bids []uint16, all bool) *dbus.Error {
			if all == (len(bids) > 0) {
				return dbus.NewError(errorInvalidArgs, []any{"give BIDs or all, not both and not neither"})
			}
			return s.call(snd, "Deregister", func(ctx context.Context) error { return s.cfg.Backend.Deregister(ctx, bids, all) })
		},
		"SetPriority": func(snd dbus.Sender, bid uint16, prio byte) *dbus.Error {
			if bid == 0 {
				return dbus.NewError(errorInvalidArgs, []any{"BID 0 is reserved"})
			}
			return s.call(snd, "SetPriority", func(ctx context.Context) error { return s.cfg.Backend.SetPriority(ctx, bid, prio) })
		},
		"Reload": func(snd dbus.Sender) *dbus.Error {
			return s.call(snd, "Reload", s.cfg.Backend.Reload)
		},
		"Hint": func(snd dbus.Sender, kind, iface string) *dbus.Error {
			switch kind {
			case control.HintUp, control.HintDown, control.HintConnectivity:
			default:
				return dbus.NewError(errorInvalidArgs, []any{fmt.Sprintf("unknown hint %q (want up, down or connectivity)", kind)})
			}
			return s.call(snd, "Hint", func(ctx context.Context) error { return s.cfg.Backend.Hint(ctx, kind, iface) })
		},
	}
}

// read runs a method that returns an object, sent as JSON.
func (s *service) read(snd dbus.Sender, method string, fn func(context.Context) (any, error)) (string, *dbus.Error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CallTimeout)
	defer cancel()
	v, err := fn(ctx)
	if err != nil {
		return "", s.dbusError(snd, method, err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		return "", s.dbusError(snd, method, err)
	}
	return string(js), nil
}

// call runs a method that returns nothing.
func (s *service) call(snd dbus.Sender, method string, fn func(context.Context) error) *dbus.Error {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CallTimeout)
	defer cancel()
	s.cfg.Logger.Debug("D-Bus call", "method", method, "sender", string(snd))
	if err := fn(ctx); err != nil {
		return s.dbusError(snd, method, err)
	}
	return nil
}

// dbusError names err the way the HTTP API chooses its status code.
func (s *service) dbusError(snd dbus.Sender, method string, err error) *dbus.Error {
	name := errorFailed
	switch {
	case errors.Is(err, control.ErrInvalid):
		name = errorInvalidArgs
	case errors.Is(err, control.ErrNotFound):
		name = ErrorNotFound
	case errors.Is(err, control.ErrConflict):
		name = ErrorConflict
	case errors.Is(err, control.ErrForbidden):
		name = errorAccessDenied
	default:
		s.cfg.Logger.Warn("D-Bus call failed", "method", method, "sender", string(snd), "err", err)
	}
	return dbus.NewError(name, []any{err.Error()})
}

// introspectNode describes the service's object.
func introspectNode() *introspect.Node {
	in := func(name, typ string) introspect.Arg { return introspect.Arg{Name: name, Type: typ, Direction: "in"} }
	out := func(name, typ string) introspect.Arg { return introspect.Arg{Name: name, Type: typ, Direction: "out"} }
	return &introspect.Node{
		Name: string(ObjectPath),
		// NewIntrospectable adds Introspectable and Peer.
		Interfaces: []introspect.Interface{
			{
				Name: Interface,
				Methods: []introspect.Method{
					{Name: "Status", Args: []introspect.Arg{out("status", "s")}},
					{Name: "Bindings", Args: []introspect.Arg{out("bindings", "s")}},
					{Name: "Interfaces", Args: []introspect.Arg{out("interfaces", "s")}},
					{Name: "Register", Args: []introspect.Arg{in("bids", "aq")}},
					{Name: "Deregister", Args: []introspect.Arg{in("bids", "aq"), in("all", "b")}},
					{Name: "SetPriority", Args: []introspect.Arg{in("bid", "q"), in("priority", "y")}},
					{Name: "Reload"},
					{Name: "Hint", Args: []introspect.Arg{in("kind", "s"), in("interface", "s")}},
				},
				Signals: []introspect.Signal{{
					Name: "BindingChanged",
					Args: []introspect.Arg{{Name: "bid", Type: "q"}, {Name: "state", Type: "s"},
						{Name: "removed", Type: "b"}, {Name: "binding", Type: "s"}},
				}},
			},
		},
	}
}
