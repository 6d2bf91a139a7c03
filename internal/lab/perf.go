package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// IperfResult is what one iperf3 client run measured.
type IperfResult struct {
	BitsPerSecond float64 // received by the far end
	Retransmits   int     // TCP retransmissions of the sender
}

// ParseIperf reads iperf3's JSON report (-J).
func ParseIperf(out []byte) (IperfResult, error) {
	var r struct {
		End struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return IperfResult{}, fmt.Errorf("iperf3 report: %w", err)
	}
	if r.Error != "" {
		return IperfResult{}, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived.BitsPerSecond <= 0 {
		return IperfResult{}, errors.New("iperf3: nothing received")
	}
	return IperfResult{BitsPerSecond: r.End.SumReceived.BitsPerSecond, Retransmits: r.End.SumSent.Retransmits}, nil
}

// StartIperfServer starts an iperf3 server in node bound to addr and
// returns once it listens; stop ends it.
func (l *Lab) StartIperfServer(ctx context.Context, node string, addr netip.Addr) (stop func(), err error) {
	cmd, err := l.Command(ctx, node, "iperf3", "-s", "-B", addr.String())
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("iperf3 server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = func() { cmd.Process.Kill(); <-exited }
	deadline := time.Now().Add(10 * time.Second)
	for {
		ls, err := l.Exec(ctx, node, "ss", "-Hltn", "sport = :5201")
		if err == nil && len(bytes.TrimSpace(ls)) > 0 {
			return stop, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("iperf3 server in %s exited: %s", node, bytes.TrimSpace(out.Bytes()))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, fmt.Errorf("iperf3 server in %s not listening after 10 s: %s", node, bytes.TrimSpace(out.Bytes()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Iperf runs an iperf3 client (JSON output) in node with args, retrying
// for a second while the server may still be starting.
func (l *Lab) Iperf(ctx context.Context, node string, args ...string) (IperfResult, error) {
	var last error
	for range 10 {
		out, err := l.Exec(ctx, node, "iperf3", append([]string{"-J"}, args...)...)
		if err == nil {
			return ParseIperf(out)
		}
		last = err
		if ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return IperfResult{}, last
}

// SetSegmentation switches TSO and GSO of dev in node: with them off the
// lab's veths carry real segments instead of 64 KiB super-packets.
func (l *Lab) SetSegmentation(node, dev string, on bool) error {
	if err := checkNode(node); err != nil {
		return err
	}
	return SetSegmentation(l.NS(node), dev, on)
}
