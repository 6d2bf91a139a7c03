package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mcoad/mcoad/pkg/proto"
)

// MHFilter is the capture filter for what carries Mobility Headers: BUs
// (Destination Options with the Home Address option first), BAs (type 2
// routing header first) and bare Mobility Headers.
const MHFilter = "ip6 proto 60 or ip6 proto 43 or ip6 proto 135"

// captureStartTimeout bounds the wait for tshark to capture.
const captureStartTimeout = 20 * time.Second

// Capture is tshark running in one of the lab's nodes, writing what it
// captures to a pcapng file.
type Capture struct {
	Proc  *Proc
	File  string
	Size0 int64 // the file's size once tshark captured
}

// StartCapture starts tshark on node's iface with the capture filter and
// returns once it captures into file.
func (l *Lab) StartCapture(ctx context.Context, node, iface, filter, file string) (*Capture, error) {
	p, err := l.Start(node, "tshark", "-n", "-i", iface, "-f", filter, "-w", file)
	if err != nil {
		return nil, err
	}
	c := &Capture{Proc: p, File: file}
	wctx, cancel := context.WithTimeout(ctx, captureStartTimeout)
	defer cancel()
	_, err = Poll(wctx, 10*time.Millisecond, func(context.Context) (bool, error) {
		if !p.Running() {
			return false, fmt.Errorf("tshark exited: %v: %s", p.Err(), p.Tail(2000))
		}
		// "Capturing on" comes before dumpcap really captures; the file
		// gets its pcapng header once it does.
		st, err := os.Stat(file)
		if err != nil || st.Size() == 0 || !strings.Contains(p.Tail(4000), "Capturing on") {
			return false, nil
		}
		c.Size0 = st.Size()
		return true, nil
	})
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("lab: tshark on %s %s: %w (%q)", node, iface, err, p.Tail(500))
	}
	return c, nil
}

// Stop ends the capture cleanly: SIGINT to tshark alone, which then has
// its dumpcap write out what it captured (a signal to the whole process
// group can kill dumpcap before it does). The error says tshark did not
// stop on SIGINT within 10s; it is stopped anyway. Stop again does
// nothing.
func (c *Capture) Stop() error {
	if !c.Proc.Running() {
		c.Proc.Stop()
		return nil
	}
	syscall.Kill(c.Proc.Pid, syscall.SIGINT)
	var err error
	select {
	case <-c.Proc.Done():
	case <-time.After(10 * time.Second):
		err = errors.New("lab: tshark did not stop on SIGINT")
	}
	c.Proc.Stop()
	return err
}

// MHSent is one kind of Mobility Header message from one source.
type MHSent struct {
	Type proto.MHType
	Src  netip.Addr
}

// CountMH counts the Mobility Header messages in a capture file by type
// and source, as Wireshark's dissector decodes them (the source of the
// innermost header: the sender of a tunnelled message).
func CountMH(ctx context.Context, file string) (map[MHSent]int, error) {
	out, err := exec.CommandContext(ctx, "tshark", "-n", "-r", file, "-Y", "mipv6", "-T", "fields",
		"-E", "separator=/t", "-E", "occurrence=l", "-e", "mip6.mhtype", "-e", "ipv6.src").Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return nil, fmt.Errorf("lab: tshark -r %s: %w: %s", file, err, ee.Stderr)
	} else if err != nil {
		return nil, fmt.Errorf("lab: tshark -r %s: %w", file, err)
	}
	n := map[MHSent]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		t, src, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		typ, err := strconv.Atoi(t)
		a, aerr := netip.ParseAddr(src)
		if err != nil || aerr != nil {
			return nil, fmt.Errorf("lab: tshark -r %s: line %q", file, line)
		}
		n[MHSent{proto.MHType(typ), a}]++
	}
	return n, nil
}

// CountMHUntil counts the Mobility Header messages captured so far
// (CountMH over the file tshark is writing, which dumpcap fills in
// batches) until done says all it waits for is there or timeout passes,
// and returns the last count.
func (c *Capture) CountMHUntil(ctx context.Context, timeout time.Duration, done func(map[MHSent]int) bool) (map[MHSent]int, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var n map[MHSent]int
	_, err := Poll(wctx, 100*time.Millisecond, func(context.Context) (bool, error) {
		var err error
		n, err = CountMH(ctx, c.File)
		return err == nil && done(n), err
	})
	if n != nil && ctx.Err() == nil {
		return n, nil
	}
	return n, err
}
