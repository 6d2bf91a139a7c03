package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
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
