package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a process has to exit after SIGTERM.
const stopGrace = 3 * time.Second

// Proc is a long-lived process started by the lab in one of its nodes. Its
// standard output and error go to the file Log; Down stops it.
type Proc struct {
	Node string   // node it runs in
	Name string   // command, as resolved on PATH
	Args []string // arguments
	Pid  int
	Log  string // path of its output

	comm     string
	pidFile  string
	done     chan struct{}
	err      error
	stopOnce sync.Once
	stopErr  error
}

// Start runs name (looked up on the host's PATH) with args inside node's
// namespace, in a process group of its own, with its output in a log file in
// the lab's directory. Down stops it (SIGTERM, then SIGKILL after 3s).
func (l *Lab) Start(node, name string, args ...string) (*Proc, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	if !nsExists(l.NS(node)) {
		return nil, fmt.Errorf("%w: no namespace %s", ErrDown, l.NS(node))
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("lab: start %s in %s: %w", name, node, err)
	}
	base := filepath.Base(path)
	l.mu.Lock()
	l.seq++
	stem := fmt.Sprintf("%s-%s-%d", node, base, l.seq)
	l.mu.Unlock()

	p := &Proc{
		Node:    node,
		Name:    path,
		Args:    args,
		Log:     filepath.Join(l.Dir, stem+".log"),
		comm:    base,
		pidFile: filepath.Join(l.Dir, "proc-"+stem+".pid"),
		done:    make(chan struct{}),
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.NS(node), path}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := startCmd(cmd, l.cfg.Detach); err != nil {
		return nil, fmt.Errorf("lab: start %s in %s: %w", name, node, err)
	}
	p.Pid = cmd.Process.Pid
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	// `ip netns exec` execs the command in place, so Pid is the command's.
	if err := os.WriteFile(p.pidFile, fmt.Appendf(nil, "%d %s\n", p.Pid, base), 0o644); err != nil {
		p.Stop()
		return nil, fmt.Errorf("lab: %w", err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit status; valid once Done is closed.
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process's group.
func (p *Proc) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return nil
	}
	return signalGroup(p.Pid, sig)
}

// Stop sends SIGTERM to the process group, then SIGKILL if it has not exited
// within 3s, and waits for it. It is idempotent.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		p.stopErr = p.stop()
		os.Remove(p.pidFile)
	})
	return p.stopErr
}

func (p *Proc) stop() error {
	if !p.Running() {
		return nil
	}
	signalGroup(p.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
	}
	signalGroup(p.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(2 * time.Second):
		return fmt.Errorf("lab: %s in %s (pid %d) survived SIGKILL", p.comm, p.Node, p.Pid)
	}
}

// Tail returns up to the last n bytes of the process's log.
func (p *Proc) Tail(n int) string { return tailFile(p.Log, n) }

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// terminate sends SIGTERM to pids, waits up to stopGrace for them to exit,
// then SIGKILLs the rest.
func terminate(pids []int) error {
	if len(pids) == 0 {
		return nil
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	waitGone := func(d time.Duration) []int {
		deadline := time.Now().Add(d)
		for {
			var left []int
			for _, pid := range pids {
				if alive(pid) {
					left = append(left, pid)
				}
			}
			if len(left) == 0 || time.Now().After(deadline) {
				return left
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	left := waitGone(stopGrace)
	for _, pid := range left {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if left = waitGone(2 * time.Second); len(left) > 0 {
		return fmt.Errorf("lab: processes %v survived SIGKILL", left)
	}
	return nil
}

// killPidFiles stops the processes named by the pid files in dir (ours hold
// "PID COMM"; radvd's, named radvd-NODE.pid, hold just the PID) and removes
// the files. A pid is only killed if it still runs that command outside the
// host's namespace, so stale files cannot hit an unrelated process.
func killPidFiles(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.pid"))
	if err != nil {
		return err
	}
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b))
		if len(fields) == 0 {
			continue
		}
		pid, err := strconv.Atoi(fields[0])
		if err != nil || pid <= 1 {
			continue
		}
		comm, _, _ := strings.Cut(filepath.Base(f), "-")
		if len(fields) > 1 {
			comm = fields[1]
		}
		if labProcess(pid, comm) {
			pids = append(pids, pid)
		}
	}
	err = terminate(pids)
	for _, f := range files {
		if rerr := os.Remove(f); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}
