// Package ntptest runs a small NTP (RFC 5905, version 4) server on loopback
// UDP for tests. It answers client requests with the local time shifted by a
// settable offset, so a client such as github.com/beevik/ntp measures that
// offset. It can be told to stop answering, to test a clock whose servers are
// unreachable.
package ntptest

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A Server is a running NTP server. Its methods are safe for concurrent use.
type Server struct {
	conn     *net.UDPConn
	offset   atomic.Int64 // time.Duration added to the local clock
	silent   atomic.Bool
	requests atomic.Int64
	done     chan struct{}
	once     sync.Once
}

// Start starts a server on 127.0.0.1 at a free port whose clock is ahead of
// the local one by offset (behind if negative). It is closed when the test
// ends.
func Start(t testing.TB, offset time.Duration) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", offset)
	if err != nil {
		t.Fatalf("ntptest: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Listen starts a server on the UDP address addr ("127.0.0.1:0" picks a free
// port) whose clock is ahead of the local one by offset. The caller must
// Close it.
func Listen(addr string, offset time.Duration) (*Server, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	s := &Server{conn: conn, done: make(chan struct{})}
	s.offset.Store(int64(offset))
	go s.serve()
	return s, nil
}

// Addr returns the server's address as "host:port".
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// SetOffset changes how far the server's clock is ahead of the local one.
func (s *Server) SetOffset(d time.Duration) { s.offset.Store(int64(d)) }

// SetSilent makes the server drop requests (true) or answer them (false).
func (s *Server) SetSilent(silent bool) { s.silent.Store(silent) }

// Requests returns the number of well-formed client requests received,
// answered or not.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Close stops the server and waits for it to finish. It may be called more
// than once.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		err = s.conn.Close()
		<-s.done
	})
	return err
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 1024)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		rx := time.Now().Add(time.Duration(s.offset.Load()))
		req, err := parsePacket(buf[:n])
		if err != nil || req.mode != modeClient {
			continue
		}
		s.requests.Add(1)
		if s.silent.Load() {
			continue
		}
		resp, err := reply(req, rx, time.Now().Add(time.Duration(s.offset.Load())))
		if err != nil {
			continue
		}
		s.conn.WriteToUDP(resp.marshal(), from)
	}
}
