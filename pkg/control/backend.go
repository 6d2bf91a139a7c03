package control

import (
	"context"
	"errors"
	"net/http"
)

// MNBackend is what mcoad implements to be served: reads take snapshots,
// mutating calls send commands to the goroutine that owns the state. Every
// method gets the request's context, cancelled when the client goes away.
//
// Errors that wrap ErrInvalid, ErrNotFound or ErrConflict reach the client as
// 400, 404 or 409 with err.Error() as the reason (so a bad reload says file,
// line and key); other errors are 500.
type MNBackend interface {
	Status(ctx context.Context) (Status, error)
	Bindings(ctx context.Context) ([]Binding, error)
	Interfaces(ctx context.Context) ([]Interface, error)
	// Register registers the given BIDs again now; all bindings when bids
	// is empty.
	Register(ctx context.Context, bids []uint16) error
	// Deregister removes the given BIDs, or every binding when all is set
	// (the server guarantees exactly one of the two).
	Deregister(ctx context.Context, bids []uint16, all bool) error
	SetPriority(ctx context.Context, bid uint16, prio uint8) error
	Policies(ctx context.Context) ([]Policy, error)
	AddPolicy(ctx context.Context, p Policy) error
	DeletePolicy(ctx context.Context, name string) error
	// Reload re-reads the configuration; a bad one is refused (wrap
	// ErrInvalid) and the running configuration stays.
	Reload(ctx context.Context) error
	// Hint is a nudge from NetworkManager: kind is HintUp, HintDown or
	// HintConnectivity (checked by the server), iface may be empty.
	Hint(ctx context.Context, kind, iface string) error
}

// HABackend is what mcoa-ha implements.
type HABackend interface {
	Status(ctx context.Context) (Status, error)
	Cache(ctx context.Context) ([]CacheEntry, error)
}

// Errors a backend wraps to choose the HTTP status; the client's *APIError
// matches them with errors.Is too.
var (
	ErrInvalid    = errors.New("invalid request")       // 400
	ErrForbidden  = errors.New("permission denied")     // 403
	ErrNotFound   = errors.New("not found")             // 404
	ErrConflict   = errors.New("conflict")              // 409
	ErrNotRunning = errors.New("daemon is not running") // client side: nothing listens on the socket
)

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
