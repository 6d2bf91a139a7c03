package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const procStatusSample = `Name:	mcoactl
Umask:	0022
State:	R (running)
Pid:	4242
Uid:	1000	1001	1000	1000
Gid:	1000	1000	1000	1000
FDSize:	64
Groups:	4 24 27 998 
NStgid:	4242
`

func TestParseProcStatus(t *testing.T) {
	euid, groups, err := parseProcStatus(strings.NewReader(procStatusSample))
	if err != nil {
		t.Fatal(err)
	}
	if euid != 1001 || fmt.Sprint(groups) != "[4 24 27 998]" {
		t.Errorf("euid %d groups %v", euid, groups)
	}
	// No supplementary groups at all is a valid, empty line.
	_, groups, err = parseProcStatus(strings.NewReader("Uid:\t0\t0\t0\t0\nGroups:\t\n"))
	if err != nil || len(groups) != 0 {
		t.Errorf("empty Groups: %v %v", groups, err)
	}
	for _, bad := range []string{"", "Uid:\t1\t1\n", "Groups:\t1\n", "Uid:\tx\ty\nGroups:\n", "Uid:\t1\t1\nGroups:\t1 z\n", "Uid:\t1\nGroups:\n"} {
		if _, _, err := parseProcStatus(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Our own status file parses and names our uid.
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	euid, _, err = parseProcStatus(f)
	if err != nil || euid != uint32(os.Geteuid()) {
		t.Errorf("/proc/self/status: euid %d, %v", euid, err)
	}
}

func TestAuthorizerDecisions(t *testing.T) {
	procs := map[int32]string{
		100: "Uid:\t1000\t1000\t1000\t1000\nGroups:\t4 998\n", // in group 998 by supplementary group
		101: "Uid:\t1000\t1000\t1000\t1000\nGroups:\t4\n",     // not in it
		102: "Uid:\t2000\t2000\t2000\t2000\nGroups:\t998\n",   // pid reused by another user
		103: "garbage",
	}
	a := newAuthorizer(998, "mcoa")
	a.procStatus = func(pid int32) (io.ReadCloser, error) {
		s, ok := procs[pid]
		if !ok {
			return nil, os.ErrNotExist
		}
		return io.NopCloser(strings.NewReader(s)), nil
	}
	cases := []struct {
		name  string
		peer  *Peer
		allow bool
		why   string
	}{
		{"no credentials", nil, false, "unknown"},
		{"root", &Peer{PID: 1, UID: 0, GID: 0}, true, ""},
		{"root with another group", &Peer{PID: 999, UID: 0, GID: 50}, true, ""},
		{"primary group", &Peer{PID: 999, UID: 1000, GID: 998}, true, ""},
		{"supplementary group", &Peer{PID: 100, UID: 1000, GID: 1000}, true, ""},
		{"not in group", &Peer{PID: 101, UID: 1000, GID: 1000}, false, "uid 1000 is neither root nor in group mcoa"},
		{"pid reused", &Peer{PID: 102, UID: 1000, GID: 1000}, false, "neither root"},
		{"process gone", &Peer{PID: 555, UID: 1000, GID: 1000}, false, "neither root"},
		{"bad status file", &Peer{PID: 103, UID: 1000, GID: 1000}, false, "neither root"},
		{"nobody", &Peer{PID: 101, UID: 65534, GID: 65534}, false, "uid 65534"},
	}
	for _, c := range cases {
		err := a.allow(c.peer)
		if (err == nil) != c.allow {
			t.Errorf("%s: allow = %v, want %v", c.name, err, c.allow)
			continue
		}
		if err != nil && (!errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), c.why)) {
			t.Errorf("%s: error %q, want ErrForbidden with %q", c.name, err, c.why)
		}
	}

	// Without a control group only root may.
	none := newAuthorizer(-1, "mcoa")
	if err := none.allow(&Peer{UID: 0}); err != nil {
		t.Errorf("root refused without group: %v", err)
	}
	if err := none.allow(&Peer{UID: 1000, GID: 998}); err == nil || !strings.Contains(err.Error(), `control group "mcoa" does not exist`) {
		t.Errorf("no group: %v", err)
	}
	if err := newAuthorizer(-1, "").allow(&Peer{UID: 1000}); err == nil || !strings.Contains(err.Error(), "is not root") {
		t.Errorf("no group configured: %v", err)
	}
}

func TestLookupGroup(t *testing.T) {
	if g, err := lookupGroup(""); g != -1 || err != nil {
		t.Errorf("empty: %d %v", g, err)
	}
	if g, err := lookupGroup("4242"); g != 4242 || err != nil {
		t.Errorf("numeric: %d %v", g, err)
	}
	if g, err := lookupGroup("no-such-group-mcoa-test"); g != -1 || err == nil {
		t.Errorf("missing: %d %v", g, err)
	}
	if g, err := lookupGroup("root"); err == nil && g != 0 {
		t.Errorf("root = %d", g)
	}
}

// Without credentials (a plain http.Handler use, or a non-unix listener)
// reads work and writes are refused.
func TestNoCredentialsOnlyReads(t *testing.T) {
	m := sampleMN()
	srv, err := NewServer(Config{Socket: "/x", MN: m, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	srv.ServeHTTP(rec, newRequest("GET", "/v1/bindings", ""))
	if rec.Code != 200 {
		t.Errorf("GET without creds: %d", rec.Code)
	}
	rec = newRecorder()
	srv.ServeHTTP(rec, newRequest("POST", "/v1/reload", ""))
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "credentials are unknown") {
		t.Errorf("POST without creds: %d %s", rec.Code, rec.Body)
	}
}

// The helper process re-executed by the root tests: it runs one client call
// as the user it was started as and prints the outcome.
func TestMain(m *testing.M) {
	if sock := os.Getenv("MCOA_CONTROL_HELPER_SOCKET"); sock != "" {
		os.Exit(helperMain(sock, os.Getenv("MCOA_CONTROL_HELPER_CALL")))
	}
	os.Exit(m.Run())
}

func helperMain(sock, call string) int {
	c := NewClient(sock)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	switch call {
	case "get":
		_, err = c.Bindings(ctx)
	case "post":
		err = c.Reload(ctx)
	default:
		fmt.Println("bad call", call)
		return 3
	}
	var ae *APIError
	switch {
	case err == nil:
		fmt.Println("OK")
	case errors.As(err, &ae):
		fmt.Printf("HTTP %d %s\n", ae.Code, ae.Reason)
	default:
		fmt.Printf("ERR %s\n", err)
	}
	return 0
}

// asUser runs the test binary's helper as another user and returns its
// one-line report.
func asUser(t *testing.T, bin, sock, call string, uid, gid uint32, groups ...uint32) string {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "MCOA_CONTROL_HELPER_SOCKET="+sock, "MCOA_CONTROL_HELPER_CALL="+call)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as %d/%d: %v: %s", uid, gid, err, out)
	}
	return strings.TrimSpace(string(out))
}

// helperBinary copies the test binary where other users can run it, into a
// directory they can enter, which is returned too.
func helperBinary(t *testing.T) (bin, dir string) {
	t.Helper()
	dir = t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "control.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}

// As root: real peer credentials of other users, end to end.
func TestPeerCredentialsOtherUsers(t *testing.T) {
	requireRoot(t)
	bin, dir := helperBinary(t)
	const ctlGID = 4242 // a group no test user is in by accident
	m := sampleMN()
	ts := startServer(t, Config{MN: m, Group: strconv.Itoa(ctlGID), Socket: filepath.Join(dir, "mcoad.sock")})

	fi, err := os.Stat(ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o660 || st.Gid != ctlGID {
		t.Errorf("socket mode %v gid %d, want 0660 gid %d", fi.Mode().Perm(), st.Gid, ctlGID)
	}

	// With mode 0660 a stranger cannot even connect, and is told so.
	if got := asUser(t, bin, ts.sock, "get", 65534, 65534); got != "ERR permission denied on "+ts.sock+" (be root or in mcoad's control group)" {
		t.Errorf("stranger on a 0660 socket: %q", got)
	}
	// Members connect; by primary or supplementary group they may write.
	if got := asUser(t, bin, ts.sock, "post", 65534, ctlGID); got != "OK" {
		t.Errorf("primary group member POST: %q", got)
	}
	if got := asUser(t, bin, ts.sock, "post", 65534, 65534, 100, ctlGID); got != "OK" {
		t.Errorf("supplementary group member POST: %q", got)
	}

	// Open the socket to everyone: the peer check alone keeps writes safe.
	if err := os.Chmod(ts.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	if got := asUser(t, bin, ts.sock, "get", 65534, 65534); got != "OK" {
		t.Errorf("stranger GET: %q", got)
	}
	before := len(m.Calls())
	if got := asUser(t, bin, ts.sock, "post", 65534, 65534, 100); got != "HTTP 403 permission denied: uid 65534 is neither root nor in group 4242" {
		t.Errorf("stranger POST: %q", got)
	}
	if calls := m.Calls()[before:]; len(calls) != 0 {
		t.Errorf("refused call reached the backend: %v", calls)
	}
	// Root (this process) may.
	if err := ts.client.Reload(context.Background()); err != nil {
		t.Errorf("root POST: %v", err)
	}
}
