package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Limits that keep a hostile or broken client from hurting the daemon.
const (
	MaxBodySize       = 64 << 10 // bytes of a request body
	maxHeaderBytes    = 16 << 10
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = 2 * time.Minute
	// eventWriteTimeout disconnects an event subscriber that stopped
	// reading: its queue already keeps Publish from blocking, this frees
	// the connection.
	eventWriteTimeout = 30 * time.Second
	shutdownTimeout   = 2 * time.Second
)

// Config configures a Server. Socket is required; at least one of MN and HA
// must be set. Only the routes of the parts that are set are served.
type Config struct {
	Socket string // e.g. /run/mcoad/mcoad.sock
	// Group is the control group ([control] group): the socket is given to
	// it and its members may make mutating calls. A numeric gid works too.
	// Empty, or a group that does not exist: only root may.
	Group string
	// Name is the daemon's name in messages; default "mcoad" with MN,
	// "mcoa-ha" otherwise.
	Name    string
	MN      MNBackend
	HA      HABackend
	Events  *Events       // GET /v1/events; nil: not served
	Metrics MetricsSource // GET /metrics adds these; nil: only the server's own
	// Reload serves POST /v1/reload for a server without MN (mcoa-ha): it
	// reads the configuration file again and returns an error wrapping
	// ErrInvalid when the file is refused. nil: no such route.
	Reload func(context.Context) error
	Logger *slog.Logger // nil: slog.Default()
}

// Server serves the control API. It is an http.Handler too (without peer
// credentials every mutating call is refused), which tests can use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	gid    int
	auth   *authorizer
	routes map[string]map[string]http.HandlerFunc // path -> method -> handler
}

// NewServer checks cfg and resolves the control group.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Socket == "" {
		return nil, errors.New("control: no socket path")
	}
	if cfg.MN == nil && cfg.HA == nil {
		return nil, errors.New("control: no backend")
	}
	if cfg.Name == "" {
		cfg.Name = DaemonMN
		if cfg.MN == nil {
			cfg.Name = DaemonHA
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "control")
	gid, err := lookupGroup(cfg.Group)
	if err != nil {
		s.log.Warn("control group not found: only root may change the daemon", "group", cfg.Group, "err", err)
	}
	s.gid = gid
	s.auth = newAuthorizer(gid, cfg.Group)
	s.buildRoutes()
	return s, nil
}

func (s *Server) buildRoutes() {
	s.routes = make(map[string]map[string]http.HandlerFunc)
	add := func(method, path string, h http.HandlerFunc) {
		if s.routes[path] == nil {
			s.routes[path] = make(map[string]http.HandlerFunc)
		}
		s.routes[path][method] = h
	}
	if mn := s.cfg.MN; mn != nil {
		add("GET", "/v1/status", getter(mn.Status))
		add("GET", "/v1/bindings", listGetter(mn.Bindings))
		add("GET", "/v1/interfaces", listGetter(mn.Interfaces))
		add("POST", "/v1/register", s.register)
		add("POST", "/v1/deregister", s.deregister)
		add("POST", "/v1/priority", s.priority)
		add("GET", "/v1/policies", listGetter(mn.Policies))
		add("POST", "/v1/policies", s.addPolicy)
		add("POST", "/v1/reload", s.reload)
		add("POST", "/v1/hint", s.hint)
	}
	if ha := s.cfg.HA; ha != nil {
		if s.cfg.MN == nil {
			add("GET", "/v1/status", getter(ha.Status))
			if s.cfg.Reload != nil {
				add("POST", "/v1/reload", s.reload)
			}
		}
		add("GET", "/v1/cache", listGetter(ha.Cache))
	}
	if s.cfg.Events != nil {
		add("GET", "/v1/events", s.events)
	}
	add("GET", "/metrics", s.metrics)
}

// Listen creates the socket: a stale socket file is removed, but not a
// socket another server still answers on, nor anything that is not a
// socket. The socket gets mode 0660 and the control group.
func (s *Server) Listen() (net.Listener, error) {
	path := s.cfg.Socket
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	// Until the chmod the umask applies; with the usual 022 others cannot
	// connect (connect needs write permission), so the window is harmless.
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	if s.gid >= 0 {
		if err := os.Chown(path, -1, s.gid); err != nil {
			s.log.Warn("cannot give the control socket to its group", "socket", path, "group", s.cfg.Group, "err", err)
		}
	}
	return l, nil
}

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket: refusing to remove it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another server is already listening on %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("checking %s for a live server: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}

// ListenAndServe is Listen then Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	l, err := s.Listen()
	if err != nil {
		return err
	}
	return s.Serve(ctx, l)
}

// Serve answers requests on l until ctx is done, then ends the event
// streams, waits briefly for requests in progress and closes l (removing
// the socket file if Listen created it). It returns nil after ctx is done.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ConnContext:       withPeer,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(credListener{l}) }()
	select {
	case err := <-errc:
		return fmt.Errorf("control: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-errc
	return nil
}

// ServeHTTP routes a request. Unknown routes get 404, a known route with
// the wrong method 405, both with a JSON reason.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("control handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
			writeError(w, http.StatusInternalServerError, "internal error")
		}
	}()
	path := r.URL.Path
	methods, ok := s.routes[path]
	var name string
	if !ok && s.cfg.MN != nil && strings.HasPrefix(path, "/v1/policies/") {
		name = strings.TrimPrefix(path, "/v1/policies/")
		methods = map[string]http.HandlerFunc{"DELETE": func(w http.ResponseWriter, r *http.Request) {
			s.deletePolicy(w, r, name)
		}}
		ok = true
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such route %s on %s", path, s.cfg.Name))
		return
	}
	h, ok := methods[r.Method]
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		sort.Strings(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, path, strings.Join(allow, ", ")))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		p, _ := r.Context().Value(peerKey{}).(*Peer)
		if err := s.auth.allow(p); err != nil {
			s.log.Info("control: refused", "method", r.Method, "path", path, "peer", p, "err", err)
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		s.log.Info("control request", "method", r.Method, "path", path, "peer", p)
	}
	h(w, r)
}

func getter[T any](f func(context.Context) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r.Context())
		if err != nil {
			writeBackendError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// listGetter answers [] rather than null for an empty list.
func listGetter[T any](f func(context.Context) ([]T, error)) http.HandlerFunc {
	return getter(func(ctx context.Context) ([]T, error) {
		v, err := f(ctx)
		if v == nil {
			v = []T{}
		}
		return v, err
	})
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req RegisterRequest
	if !decode(w, r, &req, true) {
		return
	}
	if err := checkBIDs(req.BIDs); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.done(w, s.cfg.MN.Register(r.Context(), req.BIDs))
}

func (s *Server) deregister(w http.ResponseWriter, r *http.Request) {
	var req DeregisterRequest
	if !decode(w, r, &req, false) {
		return
	}
	if (len(req.BIDs) > 0) == req.All {
		writeError(w, http.StatusBadRequest, `give either "bids" or "all": true`)
		return
	}
	if err := checkBIDs(req.BIDs); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.done(w, s.cfg.MN.Deregister(r.Context(), req.BIDs, req.All))
}

func (s *Server) priority(w http.ResponseWriter, r *http.Request) {
	// Pointers tell a missing field from a zero one.
	var req struct {
		BID      *uint16 `json:"bid"`
		Priority *uint8  `json:"priority"`
	}
	if !decode(w, r, &req, false) {
		return
	}
	if req.BID == nil || req.Priority == nil {
		writeError(w, http.StatusBadRequest, `"bid" and "priority" are required`)
		return
	}
	if *req.BID == 0 {
		writeError(w, http.StatusBadRequest, "BID 0 is reserved")
		return
	}
	s.done(w, s.cfg.MN.SetPriority(r.Context(), *req.BID, *req.Priority))
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !decode(w, r, &req, true) {
		return
	}
	if s.cfg.MN != nil {
		s.done(w, s.cfg.MN.Reload(r.Context()))
		return
	}
	s.done(w, s.cfg.Reload(r.Context()))
}

func (s *Server) hint(w http.ResponseWriter, r *http.Request) {
	var req HintRequest
	if !decode(w, r, &req, false) {
		return
	}
	switch req.Kind {
	case HintUp, HintDown, HintConnectivity:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("hint kind %q: want up, down or connectivity", req.Kind))
		return
	}
	if req.Interface != "" && !validIfName(req.Interface) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad interface name %q", req.Interface))
		return
	}
	s.done(w, s.cfg.MN.Hint(r.Context(), req.Kind, req.Interface))
}

func (s *Server) addPolicy(w http.ResponseWriter, r *http.Request) {
	var p Policy
	if !decode(w, r, &p, false) {
		return
	}
	if err := checkPolicyName(p.Name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(p.Prefer) == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("policy %q: prefer is empty", p.Name))
		return
	}
	if err := s.cfg.MN.AddPolicy(r.Context(), p); err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request, name string) {
	if err := checkPolicyName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.done(w, s.cfg.MN.DeletePolicy(r.Context(), name))
}

func (s *Server) done(w http.ResponseWriter, err error) {
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, OK{OK: true})
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	sub := s.cfg.Events.Subscribe()
	defer sub.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// The headers go out now: a client that has them is subscribed.
	if rc.Flush() != nil {
		return
	}
	enc := json.NewEncoder(w)
	for {
		ev, err := sub.Next(r.Context())
		if err != nil {
			return
		}
		rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		for {
			if enc.Encode(ev) != nil {
				return
			}
			var ok bool
			if ev, ok, _ = sub.tryNext(); !ok {
				break
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	var ms []Metric
	if s.cfg.Metrics != nil {
		ms = s.cfg.Metrics.Metrics()
	}
	if e := s.cfg.Events; e != nil {
		ms = append(ms,
			Metric{Name: "mcoa_control_event_subscribers", Help: "Open GET /v1/events streams.", Type: Gauge,
				Samples: []Sample{{Value: float64(e.Subscribers())}}},
			Metric{Name: "mcoa_control_events_lost_total", Help: "Events slow subscribers lost.", Type: Counter,
				Samples: []Sample{{Value: float64(e.Dropped())}}},
		)
	}
	var b bytes.Buffer
	skipped, _ := writeMetrics(&b, ms)
	if len(skipped) > 0 {
		s.log.Warn("metrics skipped: bad or duplicate names", "names", skipped)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(b.Bytes())
}

// decode reads a JSON object from the request body into v; on failure it
// answers 400 and returns false. allowEmpty accepts an empty body.
func decode(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("request body larger than %d bytes", MaxBodySize))
		} else {
			writeError(w, http.StatusBadRequest, "reading request body: "+err.Error())
		}
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if allowEmpty {
			return true
		}
		writeError(w, http.StatusBadRequest, "empty request body: want a JSON object")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "bad request body: data after the JSON object")
		return false
	}
	return true
}

func checkBIDs(bids []uint16) error {
	for _, b := range bids {
		if b == 0 {
			return errors.New("BID 0 is reserved")
		}
	}
	return nil
}

// checkPolicyName keeps names usable in /v1/policies/{name} and in nftables
// comments.
func checkPolicyName(name string) error {
	if name == "" {
		return errors.New("policy name is empty")
	}
	if len(name) > 64 {
		return fmt.Errorf("policy name longer than 64 bytes")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("policy name %q: use letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// validIfName follows the kernel's rules: 1 to 15 bytes, no '/', ':' or
// white space, not "." or "..".
func validIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func writeBackendError(w http.ResponseWriter, err error) {
	code := statusOf(err)
	msg := err.Error()
	if code == http.StatusInternalServerError && msg == "" {
		msg = "internal error"
	}
	writeError(w, code, msg)
}

func writeError(w http.ResponseWriter, code int, reason string) {
	writeJSON(w, code, Error{Error: reason})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(Error{Error: "encoding answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// ServeMetrics serves GET /metrics, and nothing else, on l (a TCP listener
// from [control] metrics_address) until ctx ends: a Prometheus scraper gets
// the figures without access to the control socket.
func (s *Server) ServeMetrics(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.metrics)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics on %s: %w", l.Addr(), err)
	}
	return nil
}
