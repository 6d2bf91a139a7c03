// Package lab builds the network of namespaces that `mcoa-lab` and the
// end-to-end tests run mcoad and mcoa-ha in (DESIGN.md section 6, "Lab
// network"):
//
//	mn  eth0  ── down0 ar1 core0 ── ar1  ┐
//	mn  wlan0 ── down0 ar2 core0 ── ar2  ├ core ── ha  core0 · home0 ── homebr (home link)
//	mn  wwan0 ── down0 ar3 core0 ── ar3  ┘      └─ cn  core0 · lo 2001:db8:cccc::1
//
// Every node is a namespace named Prefix+node. The access routers and the HA
// send real Router Advertisements (radvd); the MN configures its care-of
// addresses by SLAAC. Everything else is static. Nothing is created in, or
// sent from, the host's own namespace, and every address is inside
// 2001:db8::/32.
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors callers may test for with errors.Is.
var (
	ErrUnknownNode  = errors.New("lab: unknown node")
	ErrUnknownIface = errors.New("lab: unknown MN interface")
	ErrBadPrefix    = errors.New("lab: bad namespace prefix")
	ErrDown         = errors.New("lab: lab is down")
)

// Config chooses how a lab is built. The zero value (and a nil *Config) is
// the default lab.
type Config struct {
	// Prefix of every namespace name. Default: "mcoa" + 6 random hex digits
	// + "-". Letters, digits, '_', '.', '-'; at most 32 characters.
	Prefix string
	// Dir holds radvd configurations, pid files and process logs. Default: a
	// new directory under os.TempDir(), removed by Down. A Dir given here is
	// kept (only the lab's pid files are removed from it).
	Dir string
	// NoRadvd builds the network without Router Advertisements: the MN then
	// gets no care-of address until something else sends RAs.
	NoRadvd bool
	// NoWait returns from Up as soon as the network is built, without
	// waiting for the MN's care-of addresses.
	NoWait bool
	// WaitTimeout bounds how long Up waits for the care-of addresses.
	// Default 20s.
	WaitTimeout time.Duration
	// DAD keeps Duplicate Address Detection on the MN's interfaces (so new
	// addresses are tentative for about a second). Default: off, so the lab
	// comes up fast.
	DAD bool
	// MinRAInterval and MaxRAInterval are radvd's MinRtrAdvInterval and
	// MaxRtrAdvInterval. Default 1s and 3s: Linux sends no Router
	// Solicitation when carrier comes back, so after CutLink/RestoreLink or
	// a move between links a host that does not solicit itself learns of
	// the link from the next unsolicited RA. The Mobile IPv6 Advertisement
	// Interval option is always sent, which lets radvd go as low as
	// 30ms/70ms (RFC 6275 section 7.5).
	MinRAInterval, MaxRAInterval time.Duration
	// Detach lets the processes the lab starts (radvd, Start) outlive the
	// calling process, as `mcoa-lab up` needs. Default: they are killed
	// when the calling process dies, so a crashed test leaves no daemons.
	Detach bool
	// Vehicle adds the node Host behind the MN's interface Ingress, on
	// MobileNetPrefix, which radvd advertises from the MN: the MN is then
	// a NEMO mobile router (MNConfig.Vehicle, HAConfig.Vehicle).
	Vehicle bool
	// Logger receives progress messages. Default: discarded.
	Logger *slog.Logger
}

func (c *Config) withDefaults() (Config, error) {
	var out Config
	if c != nil {
		out = *c
	}
	if out.Prefix == "" {
		out.Prefix = NewPrefix()
	}
	if err := ValidatePrefix(out.Prefix); err != nil {
		return out, err
	}
	if out.WaitTimeout <= 0 {
		out.WaitTimeout = 20 * time.Second
	}
	if out.MinRAInterval == 0 {
		out.MinRAInterval = time.Second
	}
	if out.MaxRAInterval == 0 {
		out.MaxRAInterval = max(3*time.Second, out.MinRAInterval*4/3)
	}
	// radvd's own limits, with the Mobile IPv6 extensions on.
	if out.MinRAInterval < 30*time.Millisecond || out.MaxRAInterval < 70*time.Millisecond ||
		out.MaxRAInterval > 1800*time.Second || out.MinRAInterval*4 > out.MaxRAInterval*3 {
		return out, fmt.Errorf("lab: RA interval %v..%v out of range (min >= 30ms, max >= 70ms and <= 1800s, min <= 0.75*max)",
			out.MinRAInterval, out.MaxRAInterval)
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out, nil
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)

// ValidatePrefix checks a namespace prefix.
func ValidatePrefix(p string) error {
	if !prefixRE.MatchString(p) {
		return fmt.Errorf("%w: %q (letters, digits, '_', '.', '-'; 1 to 32 characters)", ErrBadPrefix, p)
	}
	return nil
}

// NewPrefix returns a fresh default prefix, "mcoa" + 6 hex digits + "-".
func NewPrefix() string {
	var b [3]byte
	rand.Read(b[:])
	return "mcoa" + hex.EncodeToString(b[:]) + "-"
}

// labNS matches the namespaces of labs with default prefixes, and of tests
// using internal/nstest prefixes ("mcoaT" + 6 hex digits + "-").
var labNS = regexp.MustCompile(`^(mcoaT?[0-9a-f]{6}-)(mn|ar1|ar2|ar3|core|ha|cn|host)$`)

// Lab is a running lab network. Its methods are safe for concurrent use.
type Lab struct {
	Prefix string // namespace prefix
	Dir    string // configurations, pid files and logs

	cfg    Config
	ownDir bool

	mu    sync.Mutex // guards procs, seq
	procs []*Proc
	seq   int

	moveMu sync.Mutex // serializes link changes (moves reuse interface names)
}

// Up builds a lab and, unless cfg.NoWait or cfg.NoRadvd, waits until the MN
// has a care-of address on each of its three interfaces. On any error, and
// when ctx is cancelled, whatever was built is torn down.
func Up(ctx context.Context, cfg *Config) (_ *Lab, err error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tools := []string{"ip"}
	if !c.NoRadvd {
		tools = append(tools, "radvd")
	}
	if err := CheckTools(tools...); err != nil {
		return nil, err
	}
	l := &Lab{Prefix: c.Prefix, Dir: c.Dir, cfg: c}
	removeOrphans()
	for _, n := range allNodes {
		if nsExists(l.NS(n)) {
			return nil, fmt.Errorf("lab: namespace %s already exists (another lab with prefix %q is up?)", l.NS(n), l.Prefix)
		}
	}
	if err := l.makeDir(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if derr := l.Down(); derr != nil {
				err = errors.Join(err, derr)
			}
		}
	}()
	start := time.Now()
	if err := l.build(ctx); err != nil {
		return nil, err
	}
	if c.Vehicle {
		if err := l.buildVehicle(ctx); err != nil {
			return nil, err
		}
	}
	c.Logger.Info("lab network built", "prefix", l.Prefix, "took", time.Since(start))
	if c.NoRadvd {
		return l, nil
	}
	radvds, err := l.startRadvds()
	if err != nil {
		return nil, err
	}
	// The MN's links come up last, so their Router Solicitations find radvd
	// listening.
	for _, a := range Accesses {
		if err := l.ip(ctx, "-n", l.NS(MN), "link", "set", a.Iface, "up"); err != nil {
			return nil, err
		}
	}
	if c.Vehicle {
		if err := l.ip(ctx, "-n", l.NS(Host), "link", "set", HostIface, "up"); err != nil {
			return nil, err
		}
	}
	if c.NoWait {
		return l, nil
	}
	if err := l.waitCoAs(ctx, radvds); err != nil {
		return nil, err
	}
	if c.Vehicle {
		if _, err := l.WaitHostAddr(ctx); err != nil {
			return nil, err
		}
	}
	c.Logger.Info("lab up", "prefix", l.Prefix, "took", time.Since(start))
	return l, nil
}

// NS returns the namespace name of a node.
func (l *Lab) NS(node string) string { return l.Prefix + node }

func checkNode(node string) error {
	for _, n := range allNodes {
		if n == node {
			return nil
		}
	}
	return fmt.Errorf("%w: %q (want one of %s)", ErrUnknownNode, node, strings.Join(allNodes, ", "))
}

// ExecError is a command that failed, with its output.
type ExecError struct {
	Args   []string
	Output []byte
	Err    error
}

func (e *ExecError) Error() string {
	out := strings.TrimSpace(string(e.Output))
	if len(out) > 2000 {
		out = out[:2000] + "..."
	}
	if out == "" {
		return fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Args, " "), e.Err, out)
}

func (e *ExecError) Unwrap() error { return e.Err }

func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, &ExecError{Args: append([]string{name}, args...), Output: out, Err: err}
	}
	return out, nil
}

// dumpRetries bounds the retries of a netlink dump that raced a change.
const dumpRetries = 5

// output runs a command whose standard output is data (ip -j, nft -j) and
// returns that alone: what it says on stderr (warnings) must not end up in
// the parse. A netlink dump that raced a change ("Dump was interrupted and
// may be inconsistent", which ip and nft print on stderr and still exit 0
// with) is run again.
func output(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
	for try := 0; ; try++ {
		cmd := exec.CommandContext(ctx, name, args...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			out := append(stdout.Bytes(), stderr.Bytes()...)
			return out, &ExecError{Args: append([]string{name}, args...), Output: out, Err: err}
		}
		if !bytes.Contains(stderr.Bytes(), []byte("Dump was interrupted")) || try == dumpRetries {
			return stdout.Bytes(), nil
		}
	}
}

// ip runs the host's ip(8) (which only ever acts inside the lab's
// namespaces: every call passes -n or names a namespace).
func (l *Lab) ip(ctx context.Context, args ...string) error {
	_, err := run(ctx, "ip", args...)
	return err
}

// Command returns an unstarted command that runs name inside node's namespace
// (through `ip netns exec`).
func (l *Lab) Command(ctx context.Context, node, name string, args ...string) (*exec.Cmd, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS(node), name}, args...)...), nil
}

// Exec runs name inside node's namespace and returns its combined output. A
// failure is an *ExecError carrying the output.
func (l *Lab) Exec(ctx context.Context, node, name string, args ...string) ([]byte, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	return run(ctx, "ip", append([]string{"netns", "exec", l.NS(node), name}, args...)...)
}

// Output runs name inside node's namespace and returns its standard
// output alone (for commands that print data, like `nft -j`), running an
// interrupted netlink dump again. A failure is an *ExecError carrying
// stdout and stderr.
func (l *Lab) Output(ctx context.Context, node, name string, args ...string) ([]byte, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	return output(ctx, "", "ip", append([]string{"netns", "exec", l.NS(node), name}, args...)...)
}

// Down stops every process the lab started (SIGTERM, then SIGKILL; those
// in the mn node first), kills whatever else still runs in its namespaces,
// deletes the namespaces (and with them every link) and removes RunDir and
// the lab's directory if it made it. It is
// idempotent: calling it again, or on a half-built lab, is fine.
func (l *Lab) Down() error {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()

	var (
		emu  sync.Mutex
		errs []error
	)
	stop := func(procs []*Proc) {
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.Stop(); err != nil {
					emu.Lock()
					errs = append(errs, err)
					emu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	// The mobile node's processes first, while the rest of the network
	// (its home agent above all) still answers: a stopping mcoad
	// de-registers and waits for the acknowledgement.
	var mn, rest []*Proc
	for _, p := range procs {
		if p.Node == MN {
			mn = append(mn, p)
		} else {
			rest = append(rest, p)
		}
	}
	stop(mn)
	stop(rest)
	if l.Dir != "" {
		errs = append(errs, killPidFiles(l.Dir))
	}
	errs = append(errs, cleanupNamespaces(l.Prefix))
	unmountBPF(l.bpfMount())
	errs = append(errs, os.RemoveAll(l.RunDir()))
	if l.ownDir {
		errs = append(errs, os.RemoveAll(l.Dir))
	}
	return errors.Join(errs...)
}

// cleanupNamespaces kills what runs in the prefix's lab namespaces and
// deletes them.
func cleanupNamespaces(prefix string) error {
	var errs []error
	var nss []string
	for _, n := range allNodes {
		if nsExists(prefix + n) {
			nss = append(nss, prefix+n)
		}
	}
	if len(nss) == 0 {
		return nil
	}
	pids, err := pidsInNamespaces(nss)
	errs = append(errs, err)
	errs = append(errs, terminate(pids))
	for _, ns := range nss {
		if _, err := run(context.Background(), "ip", "netns", "del", ns); err != nil && nsExists(ns) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Cleanup removes the lab with the given prefix, whoever built it: it kills
// the processes whose pid files are in that lab's default directories and
// every process inside its namespaces, and deletes the namespaces. It only
// touches namespaces named prefix+node for the lab's nodes.
func Cleanup(prefix string) error {
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	var errs []error
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "mcoa-lab-"+prefix+"*"))
	for _, d := range dirs {
		errs = append(errs, killPidFiles(d))
	}
	errs = append(errs, cleanupNamespaces(prefix))
	for _, d := range dirs {
		unmountBPF(filepath.Join(d, bpfMount))
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}

// DownAll removes every lab whose namespaces follow the default naming
// ("mcoa" or "mcoaT", 6 hex digits, "-", node name), typically left behind by
// crashed runs, and returns the prefixes it removed. Labs that are in use by
// a running test are removed too: do not call it while tests run.
func DownAll() ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	seen := map[string]bool{}
	var prefixes []string
	for _, e := range ents {
		m := labNS.FindStringSubmatch(e.Name())
		if m == nil || seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		prefixes = append(prefixes, m[1])
	}
	var errs []error
	for _, p := range prefixes {
		errs = append(errs, Cleanup(p))
	}
	return prefixes, errors.Join(errs...)
}

// makeDir makes the lab's directory (a temporary one unless Config.Dir
// names it) and records the owner in it, before any namespace exists: a
// test run killed before its cleanup leaves labs that the next run's
// removeOrphans finds by that file.
func (l *Lab) makeDir() error {
	if l.Dir == "" {
		d, err := os.MkdirTemp("", "mcoa-lab-"+l.Prefix)
		if err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		l.Dir, l.ownDir = d, true
	} else if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.WriteFile(filepath.Join(l.Dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// ownerFile, in a lab's directory, holds the pid of the process that
// built it.
const ownerFile = "owner.pid"

// removeOrphans removes the labs of tests (prefix "mcoaT") whose owner
// process is gone: a test binary killed (a timeout, SIGKILL) cannot run its
// cleanup. Labs of live processes, labs without an owner file and labs of
// `mcoa-lab up` (whose owner exits on purpose) are left alone.
func removeOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "mcoa-lab-mcoaT*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || alive(pid) {
			continue
		}
		base := strings.TrimPrefix(filepath.Base(d), "mcoa-lab-")
		if m := labPrefix.FindString(base); m != "" {
			Cleanup(m)
		}
	}
}

// labPrefix is a test lab's prefix at the start of its directory's name.
var labPrefix = regexp.MustCompile(`^mcoaT[0-9a-f]{6}-`)

// netnsDir is where ip(8) keeps named namespaces.
const netnsDir = "/run/netns"

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}
