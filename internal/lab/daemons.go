package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcoad/mcoad/pkg/control"
)

// Daemon binaries, as `make build` names them.
const (
	MNBinary  = "mcoad"
	HABinary  = "mcoa-ha"
	CtlBinary = "mcoactl"
)

// FindBinary returns the path of one of the project's programs: next to the
// running executable first (bin/ after `make build`), then on PATH.
func FindBinary(name string) (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("lab: %s not found next to this program nor on PATH (run `make build`): %w", name, err)
	}
	return p, nil
}

// Interface rules the lab's mcoad uses by default: one priority per access
// link, the Ethernet one preferred.
var DefaultInterfaceRules = []InterfaceRule{
	{Match: "eth*", Priority: 30},
	{Match: "wlan*", Priority: 20},
	{Match: "wwan*", Priority: 10},
}

// DefaultPriorities are the priorities DefaultInterfaceRules give the MN's
// access interfaces.
var DefaultPriorities = func() map[string]uint8 {
	out := map[string]uint8{}
	for _, i := range MNIfaces {
		for _, r := range DefaultInterfaceRules {
			if ok, _ := path.Match(r.Match, i); ok {
				out[i] = r.Priority
				break
			}
		}
	}
	return out
}()

// InterfaceRule is one [[interface]] of mcoad's configuration.
type InterfaceRule struct {
	Match    string
	Priority uint8
	Exclude  bool // exclude = true: mcoad never uses matching interfaces
	// HoldDown: hold_down, how long a dead path must answer before it is
	// used again (0: mcoad's default).
	HoldDown time.Duration
}

// HAConfig chooses how StartHA configures mcoa-ha. The zero value is the
// lab's home agent with defaults.
type HAConfig struct {
	Bin         string        // mcoa-ha binary; default FindBinary(HABinary)
	NoBulk      bool          // bulk_registration = false (answer bulk BUs with 146)
	MaxLifetime time.Duration // max_lifetime; default 420s
	Backend     string        // [dataplane] backend; default "none"
	LogLevel    string        // default "debug"
	// StateDir: home_agent.state_dir, where mcoa-ha keeps its binding
	// cache across restarts; default a directory of this lab (the
	// system's /var/lib/mcoa-ha would be shared by parallel labs).
	StateDir string
	Extra    string // TOML appended to the file as is
	// Vehicle: the HoA's mobile router may register MobileNetPrefix
	// ([[home_agent.mn]] prefixes).
	Vehicle bool
	// Unauthenticated: no key for the HoA and allow_unauthenticated =
	// true (the lab otherwise runs with the key of MNHAKeyFile).
	Unauthenticated bool
}

// VoicePolicy is an mcoad [[policy]] (for MNConfig.Extra): UDP to port
// VoicePort, voice say, prefers wlan0, then eth0.
const VoicePolicy = `
[[policy]]
name = "voice"
protocol = "udp"
dst_port = 5001
prefer = ["wlan*", "eth*"]
`

// VoicePort is VoicePolicy's port.
const VoicePort = 5001

// MNConfig chooses how StartMN configures mcoad. The zero value is the
// lab's mobile node with defaults: bulk registration, one BID per
// interface, DefaultInterfaceRules, return_home "all", no data plane.
type MNConfig struct {
	Bin          string        // mcoad binary; default FindBinary(MNBinary)
	Registration string        // "bulk" (default) or "individual"
	BIDMode      string        // "interface" (default) or "coa"
	Lifetime     time.Duration // requested lifetime; default 420s
	ReturnHome   string        // "all" (default) or "keep-foreign"
	// KeepOnStop sets deregister_on_stop = false: a stopped mcoad leaves
	// its bindings to expire.
	KeepOnStop bool
	Backend    string          // [dataplane] backend; default "none"
	Interfaces []InterfaceRule // default DefaultInterfaceRules
	StateDir   string          // default: a directory in the lab's Dir
	LogLevel   string          // default "debug"
	Extra      string          // TOML appended to the file as is
	// Vehicle makes mcoad a NEMO mobile router for MobileNetPrefix on
	// Ingress ([mobile_router], explicit mode unless NEMOMode says
	// "implicit").
	Vehicle  bool
	NEMOMode string
	// Unauthenticated: no mnha_spi/mnha_key (for a home agent started
	// with HAConfig.Unauthenticated).
	Unauthenticated bool
}

// Daemon is mcoa-ha or mcoad running in one of the lab's nodes.
type Daemon struct {
	Node   string          // node it runs in
	Bin    string          // binary
	Config string          // its configuration file
	Socket string          // its control socket
	Client *control.Client // talks to Socket
	// StateDir is mcoa-ha's home_agent.state_dir (StartHA), "" otherwise.
	StateDir string

	lab       *Lab
	recordBUs bool // mcoa-ha: each process's BUs are recorded (BUsSince)
	mu        sync.Mutex
	proc      *Proc
	bus       *buLog // the current process's, with recordBUs
}

// RunDir is where the lab's daemons put their control sockets: a short path
// (unix socket paths are limited to 107 bytes) that Down and Cleanup remove.
func (l *Lab) RunDir() string {
	return filepath.Join(os.TempDir(), "mcoa-lab-"+l.Prefix+"run")
}

// bpfMount is where in RunDir the lab mounts the bpffs of its mcoad's
// eBPF data plane (MNConfig.Backend "ebpf": [dataplane] bpf_dir).
const bpfMount = "bpf"

func (l *Lab) bpfMount() string { return filepath.Join(l.RunDir(), bpfMount) }

// prepareEBPF readies the lab for mcoad's eBPF data plane and returns its
// bpf_dir: on a bpffs of this lab's own, so that the pins outlive the
// process for a restart and meet no other lab's.
func (l *Lab) prepareEBPF() (string, error) {
	if err := mountBPF(l.bpfMount()); err != nil {
		return "", err
	}
	return filepath.Join(l.bpfMount(), "mcoad"), nil
}

// StartHA writes mcoa-ha's configuration (the home agent at HAAddr on
// HomeIface, serving HomePrefix, the data plane cfg.Backend names) and
// starts it in the ha node. It returns once the control socket answers.
func (l *Lab) StartHA(ctx context.Context, c *HAConfig) (*Daemon, error) {
	var cfg HAConfig
	if c != nil {
		cfg = *c
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = 420 * time.Second
	}
	orDefault(&cfg.LogLevel, "debug")
	orDefault(&cfg.Backend, "none")
	orDefault(&cfg.StateDir, filepath.Join(l.Dir, "mcoa-ha-state"))
	sock := filepath.Join(l.RunDir(), "mcoa-ha.sock")
	text := fmt.Sprintf(`# written by mcoad's lab (internal/lab)
[home_agent]
address = %q
interface = %q
home_prefix = %q
serve = [%q]
bulk_registration = %v
max_lifetime = %d
state_dir = %q
`, HAAddr, HomeIface, HomePrefix, HomePrefix, !cfg.NoBulk, int(cfg.MaxLifetime/time.Second), cfg.StateDir) +
		daemonSections(cfg.Backend, sock, cfg.LogLevel)
	if cfg.Unauthenticated {
		text = strings.Replace(text, "[home_agent]\n", "[home_agent]\nallow_unauthenticated = true\n", 1)
	}
	if cfg.Vehicle || !cfg.Unauthenticated {
		text += fmt.Sprintf("\n[[home_agent.mn]]\nhome_address = %q\n", HoA)
	}
	if !cfg.Unauthenticated {
		keyFile, err := l.MNHAKeyFile()
		if err != nil {
			return nil, err
		}
		text += fmt.Sprintf("spi = %d\nkey = %q\n", MNHASPI, keyFile)
	}
	if cfg.Vehicle {
		text += fmt.Sprintf("prefixes = [%q]\n", MobileNetPrefix)
	}
	d, err := l.startDaemon(ctx, HA, HABinary, cfg.Bin, "mcoa-ha.toml", text+cfg.Extra, sock)
	if d != nil {
		d.StateDir = cfg.StateDir
	}
	return d, err
}

// CNConfig chooses how StartCN configures the correspondent's mcoa-ha. The
// zero value is a correspondent node alone at CNAddr with the TUN data
// plane (route optimisation).
type CNConfig struct {
	Bin      string // mcoa-ha binary; default FindBinary(HABinary)
	Backend  string // [dataplane] backend; default "tun"
	LogLevel string // default "debug"
	Extra    string // TOML appended to the file as is
}

// StartCN writes the configuration of mcoa-ha as a correspondent node
// alone (no [home_agent]: [correspondent] at CNAddr) and starts it in the
// cn node. It returns once the control socket answers.
func (l *Lab) StartCN(ctx context.Context, c *CNConfig) (*Daemon, error) {
	var cfg CNConfig
	if c != nil {
		cfg = *c
	}
	orDefault(&cfg.Backend, "tun")
	orDefault(&cfg.LogLevel, "debug")
	sock := filepath.Join(l.RunDir(), "mcoa-cn.sock")
	text := fmt.Sprintf(`# written by mcoad's lab (internal/lab)
[correspondent]
enabled = true
address = %q
`, CNAddr) + daemonSections(cfg.Backend, sock, cfg.LogLevel)
	return l.startDaemon(ctx, CN, HABinary, cfg.Bin, "mcoa-cn.toml", text+cfg.Extra, sock)
}

// StartMN writes mcoad's configuration (home address HoA, home agent
// HAAddr) and starts it in the mn node. It returns once the control socket
// answers.
func (l *Lab) StartMN(ctx context.Context, c *MNConfig) (*Daemon, error) {
	var cfg MNConfig
	if c != nil {
		cfg = *c
	}
	orDefault(&cfg.Registration, "bulk")
	orDefault(&cfg.BIDMode, "interface")
	orDefault(&cfg.ReturnHome, "all")
	orDefault(&cfg.Backend, "none")
	orDefault(&cfg.LogLevel, "debug")
	orDefault(&cfg.StateDir, filepath.Join(l.Dir, "mcoad-state"))
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 420 * time.Second
	}
	if cfg.Interfaces == nil {
		cfg.Interfaces = DefaultInterfaceRules
	}
	sock := filepath.Join(l.RunDir(), "mcoad.sock")
	var b strings.Builder
	fmt.Fprintf(&b, `# written by mcoad's lab (internal/lab)
[mobile_node]
home_address = %q
home_agent = %q
home_prefix = %q
lifetime = %d
bid_mode = %q
registration = %q
return_home = %q
deregister_on_stop = %v
state_dir = %q
`, HoA, HAAddr, HomePrefix, int(cfg.Lifetime/time.Second), cfg.BIDMode, cfg.Registration,
		cfg.ReturnHome, !cfg.KeepOnStop, cfg.StateDir)
	if !cfg.Unauthenticated {
		keyFile, err := l.MNHAKeyFile()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "mnha_spi = %d\nmnha_key = %q\n", MNHASPI, keyFile)
	}
	for _, r := range cfg.Interfaces {
		if r.Exclude {
			fmt.Fprintf(&b, "\n[[interface]]\nmatch = %q\nexclude = true\n", r.Match)
			continue
		}
		fmt.Fprintf(&b, "\n[[interface]]\nmatch = %q\npriority = %d\n", r.Match, r.Priority)
		if r.HoldDown > 0 {
			fmt.Fprintf(&b, "hold_down = %q\n", r.HoldDown.String())
		}
	}
	sections := daemonSections(cfg.Backend, sock, cfg.LogLevel)
	if cfg.Backend == "ebpf" {
		dir, err := l.prepareEBPF()
		if err != nil {
			return nil, err
		}
		sections = strings.Replace(sections, "[dataplane]\n", fmt.Sprintf("[dataplane]\nbpf_dir = %q\n", dir), 1)
	}
	b.WriteString(sections)
	if cfg.Vehicle {
		orDefault(&cfg.NEMOMode, "explicit")
		fmt.Fprintf(&b, "\n[mobile_router]\nenabled = true\nprefixes = [%q]\nmode = %q\ningress = [%q]\n", MobileNetPrefix, cfg.NEMOMode, Ingress)
	}
	return l.startDaemon(ctx, MN, MNBinary, cfg.Bin, "mcoad.toml", b.String()+cfg.Extra, sock)
}

// orDefault sets *s to v when it is empty.
func orDefault(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

// daemonSections are the [dataplane], [control] and [log] sections both
// daemons' configurations end with.
func daemonSections(backend, sock, level string) string {
	return fmt.Sprintf(`
[dataplane]
backend = %q

[control]
socket = %q
group = ""

[log]
level = %q
`, backend, sock, level)
}

func (l *Lab) startDaemon(ctx context.Context, node, name, bin, file, text, sock string) (*Daemon, error) {
	d := &Daemon{Node: node, Config: filepath.Join(l.Dir, file), Socket: sock, Client: control.NewClient(sock), lab: l, recordBUs: name == HABinary}
	if bin == "" {
		var err error
		if bin, err = FindBinary(name); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(l.RunDir(), 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := os.WriteFile(d.Config, []byte(text), 0o600); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	d.Bin = bin
	if err := d.Start(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// daemonStartTimeout bounds how long a daemon may take to answer on its
// control socket.
const daemonStartTimeout = 10 * time.Second

// Start starts the daemon (again, after Stop) with its configuration file
// and waits until its control socket answers.
func (d *Daemon) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil && d.proc.Running() {
		return fmt.Errorf("lab: %s already runs in %s (pid %d)", filepath.Base(d.Bin), d.Node, d.proc.Pid)
	}
	// A socket file left by a killed daemon would answer nothing: the
	// daemon replaces it, but waiting must not see it.
	os.Remove(d.Socket)
	p, err := d.lab.Start(d.Node, d.Bin, "-config", d.Config)
	if err != nil {
		return err
	}
	d.proc = p
	ctx, cancel := context.WithTimeout(ctx, daemonStartTimeout)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		_, err := d.Client.Status(cctx)
		ccancel()
		if err == nil && d.recordBUs {
			d.bus = &buLog{}
			return d.bus.follow(d.Client)
		}
		if err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("lab: %s in %s exited (%v):\n%s", filepath.Base(d.Bin), d.Node, p.Err(), strings.TrimSpace(p.Tail(4000)))
		case <-ctx.Done():
			p.Stop()
			return fmt.Errorf("lab: %s in %s does not answer on %s: %w (last: %v)\n%s",
				filepath.Base(d.Bin), d.Node, d.Socket, ctx.Err(), err, strings.TrimSpace(p.Tail(4000)))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Stop sends SIGTERM and waits for the daemon to exit (SIGKILL after 3s).
func (d *Daemon) Stop() error {
	d.mu.Lock()
	p := d.proc
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Stop()
}

// Restart stops the daemon and starts it again with the same
// configuration.
func (d *Daemon) Restart(ctx context.Context) error {
	if err := d.Stop(); err != nil {
		return err
	}
	return d.Start(ctx)
}

// Proc returns the daemon's current process.
func (d *Daemon) Proc() *Proc {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc
}

// Signal sends sig to the daemon's process group.
func (d *Daemon) Signal(sig syscall.Signal) error {
	p := d.Proc()
	if p == nil {
		return nil
	}
	return p.Signal(sig)
}
