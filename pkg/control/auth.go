package control

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
)

// Peer is the process at the other end of a control connection.
type Peer struct {
	PID int32
	UID uint32
	GID uint32
}

// LogValue makes a *Peer readable in logs.
func (p *Peer) LogValue() slog.Value {
	if p == nil {
		return slog.StringValue("unknown")
	}
	return slog.GroupValue(slog.Any("pid", p.PID), slog.Any("uid", p.UID), slog.Any("gid", p.GID))
}

type peerKey struct{}

// PeerFromContext returns the credentials of the client of a request, for
// backends that want to log who asked.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(*Peer)
	if !ok || p == nil {
		return Peer{}, false
	}
	return *p, true
}

// credListener reads each accepted connection's peer credentials once, so
// that every request on it can be authorized.
type credListener struct {
	net.Listener
}

// credConn is a connection with the credentials of its peer (peer nil and
// err set when they could not be read: such a peer may only read).
type credConn struct {
	net.Conn
	peer *Peer
	err  error
}

func (l credListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	p, perr := peerOf(c)
	return &credConn{Conn: c, peer: p, err: perr}, nil
}

// withPeer is the http.Server's ConnContext.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*credConn); ok && cc.peer != nil {
		return context.WithValue(ctx, peerKey{}, cc.peer)
	}
	return ctx
}

// authorizer decides who may make mutating calls: root, and members of the
// control group (by primary or supplementary group).
type authorizer struct {
	gid   int    // control group, -1 if none
	group string // its name, for messages
	// procStatus opens /proc/<pid>/status; tests replace it.
	procStatus func(pid int32) (io.ReadCloser, error)
}

func newAuthorizer(gid int, group string) *authorizer {
	return &authorizer{gid: gid, group: group, procStatus: func(pid int32) (io.ReadCloser, error) {
		return os.Open(fmt.Sprintf("/proc/%d/status", pid))
	}}
}

// allow returns nil if p may change the daemon's state, or an error (that
// wraps ErrForbidden) saying why not.
func (a *authorizer) allow(p *Peer) error {
	if p == nil {
		return fmt.Errorf("%w: the peer's credentials are unknown", ErrForbidden)
	}
	if p.UID == 0 {
		return nil
	}
	if a.gid < 0 {
		if a.group != "" {
			return fmt.Errorf("%w: uid %d is not root (control group %q does not exist)", ErrForbidden, p.UID, a.group)
		}
		return fmt.Errorf("%w: uid %d is not root", ErrForbidden, p.UID)
	}
	if p.GID == uint32(a.gid) {
		return nil
	}
	deny := fmt.Errorf("%w: uid %d is neither root nor in group %s", ErrForbidden, p.UID, a.groupName())
	f, err := a.procStatus(p.PID)
	if err != nil {
		return deny
	}
	defer f.Close()
	uid, groups, err := parseProcStatus(f)
	// The pid may have been reused since connect: trust its groups only if
	// it still runs as the peer's uid.
	if err != nil || uid != p.UID || !slices.Contains(groups, uint32(a.gid)) {
		return deny
	}
	return nil
}

func (a *authorizer) groupName() string {
	if a.group != "" {
		return a.group
	}
	return strconv.Itoa(a.gid)
}

// parseProcStatus returns the effective uid and the supplementary groups
// from a /proc/<pid>/status file.
func parseProcStatus(r io.Reader) (euid uint32, groups []uint32, err error) {
	sc := bufio.NewScanner(r)
	var sawUID, sawGroups bool
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		switch key {
		case "Uid": // real, effective, saved, filesystem
			if len(f) < 2 {
				return 0, nil, fmt.Errorf("proc status: bad Uid line %q", val)
			}
			u, err := strconv.ParseUint(f[1], 10, 32)
			if err != nil {
				return 0, nil, fmt.Errorf("proc status: bad Uid line: %w", err)
			}
			euid, sawUID = uint32(u), true
		case "Groups":
			for _, s := range f {
				g, err := strconv.ParseUint(s, 10, 32)
				if err != nil {
					return 0, nil, fmt.Errorf("proc status: bad Groups line: %w", err)
				}
				groups = append(groups, uint32(g))
			}
			sawGroups = true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, nil, fmt.Errorf("proc status: %w", err)
	}
	if !sawUID || !sawGroups {
		return 0, nil, fmt.Errorf("proc status: no Uid or Groups line")
	}
	return euid, groups, nil
}

// lookupGroup resolves a group name (or a numeric gid) to its gid; -1 if
// name is empty or no such group exists.
func lookupGroup(name string) (int, error) {
	if name == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}
