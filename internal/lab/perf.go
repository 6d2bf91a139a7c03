package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
