package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
)

// Default socket paths.
const (
	DefaultSocket   = "/run/mcoad/mcoad.sock"
	DefaultHASocket = "/run/mcoad/mcoa-ha.sock"
)

// maxResponse bounds what the client reads of one answer, maxEventLine one
// event.
const (
	maxResponse  = 16 << 20
	maxEventLine = 256 << 10
)

// Client talks to mcoad or mcoa-ha over their control socket.
type Client struct {
	socket string
	daemon string // for messages: DaemonMN or DaemonHA
	hc     *http.Client
}

// NewClient returns a client for the daemon listening on socketPath. It does
// not connect until a call is made.
func NewClient(socketPath string) *Client {
	c := &Client{socket: socketPath, daemon: DaemonMN}
	if filepath.Base(socketPath) == filepath.Base(DefaultHASocket) {
		c.daemon = DaemonHA
	}
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		MaxIdleConns: 1,
	}}
	return c
}

// Socket returns the socket path the client uses.
func (c *Client) Socket() string { return c.socket }

// APIError is an answer of the daemon with a 4xx or 5xx status. errors.Is
// matches it against ErrInvalid, ErrForbidden, ErrNotFound, ErrConflict.
type APIError struct {
	Daemon string
	Code   int    // HTTP status
	Reason string // the server's Error.Error
}

func (e *APIError) Error() string {
	if e.Code >= 500 {
		return fmt.Sprintf("%s failed: %s", e.Daemon, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Daemon, e.Reason)
}

// Is lets errors.Is(err, ErrNotFound) etc. work on the client side.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.Code == http.StatusBadRequest
	case ErrForbidden:
		return e.Code == http.StatusForbidden
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	case ErrConflict:
		return e.Code == http.StatusConflict
	}
	return false
}

// connError is a failure to reach the socket, said plainly; it unwraps to a
// sentinel (ErrNotRunning, ErrForbidden) and to the system error.
type connError struct {
	msg  string
	errs []error
}

func (e *connError) Error() string   { return e.msg }
func (e *connError) Unwrap() []error { return e.errs }

func (c *Client) transportError(err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return fmt.Errorf("%s (%s): %w", c.daemon, c.socket, err)
	}
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR):
		return &connError{fmt.Sprintf("%s is not running (no socket at %s)", c.daemon, c.socket), []error{ErrNotRunning, err}}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &connError{fmt.Sprintf("%s is not running (nothing listens on %s)", c.daemon, c.socket), []error{ErrNotRunning, err}}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return &connError{fmt.Sprintf("permission denied on %s (be root or in %s's control group)", c.socket, c.daemon), []error{ErrForbidden, err}}
	}
	return fmt.Errorf("connecting to %s at %s: %w", c.daemon, c.socket, err)
}

// send makes a request and returns the response if its status is 2xx; other
// answers become *APIError.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.daemon+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.transportError(err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	reason := ""
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		reason = e.Error
	} else if s := strings.TrimSpace(string(data)); s != "" && len(s) < 200 {
		reason = s
	} else {
		reason = http.StatusText(resp.StatusCode)
	}
	return nil, &APIError{Daemon: c.daemon, Code: resp.StatusCode, Reason: reason}
}

// call makes a request and decodes the JSON answer into out (if not nil).
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("reading %s's answer: %w", c.daemon, err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding %s's answer to %s %s: %w", c.daemon, method, path, err)
	}
	return nil
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.call(ctx, "GET", "/v1/status", nil, &s)
	return s, err
}

// Bindings returns mcoad's Binding Update List.
func (c *Client) Bindings(ctx context.Context) ([]Binding, error) {
	var v []Binding
	err := c.call(ctx, "GET", "/v1/bindings", nil, &v)
	return v, err
}

// Interfaces returns mcoad's interfaces.
func (c *Client) Interfaces(ctx context.Context) ([]Interface, error) {
	var v []Interface
	err := c.call(ctx, "GET", "/v1/interfaces", nil, &v)
	return v, err
}

// Cache returns mcoa-ha's binding cache.
func (c *Client) Cache(ctx context.Context) ([]CacheEntry, error) {
	var v []CacheEntry
	err := c.call(ctx, "GET", "/v1/cache", nil, &v)
	return v, err
}

// Policies returns the flow policies.
func (c *Client) Policies(ctx context.Context) ([]Policy, error) {
	var v []Policy
	err := c.call(ctx, "GET", "/v1/policies", nil, &v)
	return v, err
}

// Register registers the given BIDs again now, or all bindings with none.
func (c *Client) Register(ctx context.Context, bids ...uint16) error {
	return c.call(ctx, "POST", "/v1/register", RegisterRequest{BIDs: bids}, nil)
}

// Deregister removes the given bindings, or all of them.
func (c *Client) Deregister(ctx context.Context, bids []uint16, all bool) error {
	return c.call(ctx, "POST", "/v1/deregister", DeregisterRequest{BIDs: bids, All: all}, nil)
}

// SetPriority changes the priority of a BID.
func (c *Client) SetPriority(ctx context.Context, bid uint16, prio uint8) error {
	return c.call(ctx, "POST", "/v1/priority", PriorityRequest{BID: bid, Priority: prio}, nil)
}

// AddPolicy adds a flow policy.
func (c *Client) AddPolicy(ctx context.Context, p Policy) error {
	return c.call(ctx, "POST", "/v1/policies", p, nil)
}

// DeletePolicy removes the named flow policy.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/v1/policies/"+url.PathEscape(name), nil, nil)
}

// Reload makes the daemon re-read its configuration.
func (c *Client) Reload(ctx context.Context) error {
	return c.call(ctx, "POST", "/v1/reload", struct{}{}, nil)
}

// Hint forwards a NetworkManager event (HintUp, HintDown, HintConnectivity).
func (c *Client) Hint(ctx context.Context, kind, iface string) error {
	return c.call(ctx, "POST", "/v1/hint", HintRequest{Kind: kind, Interface: iface}, nil)
}

// Metrics returns the Prometheus text of GET /metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.send(ctx, "GET", "/metrics", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	return string(b), err
}

// Events subscribes to GET /v1/events. When it returns, the subscription
// is in place: every event published afterwards will be seen. The stream
// lasts until ctx is done, Close is called, or the daemon ends it.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	resp, err := c.send(ctx, "GET", "/v1/events", nil)
	if err != nil {
		return nil, err
	}
	return &EventStream{ctx: ctx, body: resp.Body, r: bufio.NewReaderSize(resp.Body, maxEventLine), daemon: c.daemon}, nil
}

// EventStream is an open GET /v1/events.
type EventStream struct {
	ctx    context.Context
	body   io.ReadCloser
	r      *bufio.Reader
	daemon string
}

// Next returns the next event. It returns io.EOF when the daemon ends the
// stream, and the context's error after the context is done.
func (s *EventStream) Next() (Event, error) {
	for {
		line, err := s.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return Event{}, fmt.Errorf("%s sent an event longer than %d bytes", s.daemon, s.r.Size())
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				if s.ctx.Err() != nil {
					return Event{}, s.ctx.Err()
				}
				return Event{}, err
			}
			continue
		}
		var ev Event
		if jerr := json.Unmarshal(line, &ev); jerr != nil {
			return Event{}, fmt.Errorf("bad event from %s: %w", s.daemon, jerr)
		}
		return ev, nil
	}
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }
