package lab

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Stream is a flow of numbered UDP datagrams sent every interval from a
// socket in one node to a receiver in another, with the arrival time of
// each: the probe of the data-plane figures (fail-over gaps, losses).
type Stream struct {
	Local netip.Addr // the sender's source address, as the kernel chose it

	sent, got atomic.Int64
	mu        sync.Mutex
	arrivals  []arrival
	stop      chan struct{}
	done      sync.WaitGroup
	once      sync.Once
}

type arrival struct {
	seq uint64
	at  time.Time
}

// StartStream starts sending to dst (an address of rnode) from node, one
// datagram every interval, until Close.
func (l *Lab) StartStream(node, rnode string, dst netip.AddrPort, interval time.Duration) (*Stream, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	if err := checkNode(rnode); err != nil {
		return nil, err
	}
	s := &Stream{stop: make(chan struct{})}
	var rc, sc *net.UDPConn
	err := inNS(l.NS(rnode), func() (err error) {
		rc, err = net.ListenUDP("udp6", &net.UDPAddr{IP: dst.Addr().AsSlice(), Port: int(dst.Port())})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: stream receiver in %s: %w", rnode, err)
	}
	err = inNS(l.NS(node), func() (err error) {
		sc, err = net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("lab: stream sender in %s: %w", node, err)
	}
	s.Local = sc.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	s.done.Add(2)
	go func() {
		defer s.done.Done()
		buf := make([]byte, 64)
		for {
			n, err := rc.Read(buf)
			if err != nil {
				return
			}
			if n >= 8 {
				s.got.Add(1)
				s.mu.Lock()
				s.arrivals = append(s.arrivals, arrival{binary.BigEndian.Uint64(buf), time.Now()})
				s.mu.Unlock()
			}
		}
	}()
	go func() {
		defer s.done.Done()
		defer sc.Close()
		t := time.NewTicker(interval)
		defer t.Stop()
		buf := make([]byte, 64)
		for seq := uint64(0); ; seq++ {
			select {
			case <-s.stop:
				time.Sleep(100 * time.Millisecond) // the last ones in flight
				rc.Close()
				return
			case <-t.C:
			}
			binary.BigEndian.PutUint64(buf, seq)
			sc.Write(buf) // an error (no route for a moment) is a loss
			s.sent.Add(1)
		}
	}()
	return s, nil
}

// Sent is how many datagrams were sent so far.
func (s *Stream) Sent() int64 { return s.sent.Load() }

// Got is how many arrived so far.
func (s *Stream) Got() int64 { return s.got.Load() }

// Close stops sending, waits for the last datagrams in flight and closes
// both sockets. It may be called more than once.
func (s *Stream) Close() {
	s.once.Do(func() { close(s.stop) })
	s.done.Wait()
}

func (s *Stream) sorted() []arrival {
	s.mu.Lock()
	a := slices.Clone(s.arrivals)
	s.mu.Unlock()
	slices.SortFunc(a, func(x, y arrival) int {
		switch {
		case x.seq < y.seq:
			return -1
		case x.seq > y.seq:
			return 1
		}
		return 0
	})
	return a
}

// Gaps returns the outages: for every run of missing sequence numbers, the
// time between the arrivals around it.
func (s *Stream) Gaps() []time.Duration {
	a := s.sorted()
	var out []time.Duration
	for i := 1; i < len(a); i++ {
		if a[i].seq > a[i-1].seq+1 {
			out = append(out, a[i].at.Sub(a[i-1].at))
		}
	}
	return out
}

// Outage is the longest silence of s around t: the time between the
// arrivals on either side of a run of lost datagrams that began within
// window after t (0: nothing lost), and how many datagrams that run lost.
func (s *Stream) Outage(t time.Time, window time.Duration) (time.Duration, int) {
	a := s.sorted()
	var worst time.Duration
	lost := 0
	for i := 1; i < len(a); i++ {
		if a[i].seq == a[i-1].seq+1 || a[i-1].at.Before(t.Add(-50*time.Millisecond)) || a[i-1].at.After(t.Add(window)) {
			continue
		}
		if d := a[i].at.Sub(a[i-1].at); d > worst {
			worst, lost = d, int(a[i].seq-a[i-1].seq-1)
		}
	}
	return worst, lost
}

// TCPFlow keeps writing 1000 bytes every 2 ms on one TCP connection from
// one node to a listener in another: the probe of a flow that must
// survive a fail-over.
type TCPFlow struct {
	Local         netip.Addr // the sender's source address
	written, read atomic.Int64
	err           atomic.Pointer[error]
	stop          chan struct{}
	done          sync.WaitGroup
	once          sync.Once
}

// StartTCP connects from node to dst (an address of rnode) and writes
// until Close.
func (l *Lab) StartTCP(node, rnode string, dst netip.AddrPort) (*TCPFlow, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	if err := checkNode(rnode); err != nil {
		return nil, err
	}
	f := &TCPFlow{stop: make(chan struct{})}
	var ln net.Listener
	if err := inNS(l.NS(rnode), func() (err error) { ln, err = net.Listen("tcp6", dst.String()); return err }); err != nil {
		return nil, fmt.Errorf("lab: tcp listener in %s: %w", rnode, err)
	}
	var c net.Conn
	err := inNS(l.NS(node), func() (err error) { c, err = net.DialTimeout("tcp6", dst.String(), 5*time.Second); return err })
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("lab: tcp from %s: %w", node, err)
	}
	f.Local = c.LocalAddr().(*net.TCPAddr).AddrPort().Addr()
	f.done.Add(2)
	go func() {
		defer f.done.Done()
		defer ln.Close()
		sc, err := ln.Accept()
		if err != nil {
			return
		}
		defer sc.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := sc.Read(buf)
			f.read.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer f.done.Done()
		defer c.Close()
		buf := make([]byte, 1000)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-t.C:
			}
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			n, err := c.Write(buf)
			f.written.Add(int64(n))
			if err != nil {
				f.err.Store(&err)
				return
			}
		}
	}()
	return f, nil
}

// Written and Read are the bytes sent and received so far.
func (f *TCPFlow) Written() int64 { return f.written.Load() }
func (f *TCPFlow) Read() int64    { return f.read.Load() }

// Err is the write error that ended the flow, if any.
func (f *TCPFlow) Err() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops writing and waits for both ends. It may be called more than
// once.
func (f *TCPFlow) Close() {
	f.once.Do(func() { close(f.stop) })
	f.done.Wait()
}
