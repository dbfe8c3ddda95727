// Package rsyslogtest runs Debian's rsyslogd for tests: a real syslog
// receiver with its imtcp input (RFC 6587 octet-counted framing, and TLS
// through the ossl stream driver, RFC 5425), writing each message it
// parses as RFC 5424 to a file, one line of fields a message.
//
// rsyslogd is installed by .ci/run (.ci/apt-packages: rsyslog,
// rsyslog-openssl). Where it is missing the test fails when
// AGENTLOG_REQUIRE_SERVICES=1 (as in CI) and is skipped elsewhere.
package rsyslogtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Message is one message as rsyslog parsed it.
type Message struct {
	Time, Host, App, ProcID, MsgID, SD string
	Pri                                string // the PRI value, decimal
	Msg                                []byte
}

// Server is a running rsyslogd.
type Server struct {
	Addr string // host:port of its TCP input
	out  string
	cmd  *exec.Cmd
	done chan struct{}
}

// TLS names the PEM files of the receiver's TLS identity.
type TLS struct {
	CertFile, KeyFile, CAFile string
}

// Start runs rsyslogd on a free loopback port (TLS if tc is non-nil)
// until the test ends.
func Start(t testing.TB, tc *TLS) *Server {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		if os.Getenv("AGENTLOG_REQUIRE_SERVICES") == "1" {
			t.Fatal("rsyslogd is not installed (.ci/apt-packages lists rsyslog)")
		}
		t.Skip("rsyslogd is not installed: apt-get install rsyslog rsyslog-openssl")
	}
	dir := t.TempDir()
	// A free port, taken and released: rsyslogd binds it just after.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), out: filepath.Join(dir, "messages"), done: make(chan struct{})}
	input := fmt.Sprintf(`module(load="imtcp" maxSessions="64")
input(type="imtcp" address="127.0.0.1" port="%d" supportOctetCountedFraming="on")`, port)
	if tc != nil {
		input = fmt.Sprintf(`global(defaultNetstreamDriver="ossl" defaultNetstreamDriverCAFile=%q defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" maxSessions="64" streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="%d" supportOctetCountedFraming="on")`, tc.CAFile, tc.CertFile, tc.KeyFile, port)
	}
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="4m")
%s
template(name="fields" type="list") {
  property(name="pri") constant(value="\t")
  property(name="timereported" dateFormat="rfc3339") constant(value="\t")
  property(name="hostname") constant(value="\t")
  property(name="app-name") constant(value="\t")
  property(name="procid") constant(value="\t")
  property(name="msgid") constant(value="\t")
  property(name="structured-data") constant(value="\t")
  property(name="msg") constant(value="\n")
}
*.* action(type="omfile" file=%q template="fields" flushOnTXEnd="on" asyncWriting="off")
`, dir, input, s.out)
	cfile := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(cfile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-N1", "-f", cfile).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1 refuses the configuration: %v\n%s", err, out)
	}
	var stderr bytes.Buffer
	s.cmd = exec.Command(bin, "-n", "-f", cfile, "-i", filepath.Join(dir, "pid"))
	s.cmd.Stdout, s.cmd.Stderr = &stderr, &stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Stop)
	// Ready once it accepts connections.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-s.done:
			t.Fatalf("rsyslogd exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd does not listen on %s: %s", s.Addr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// Stop stops rsyslogd (SIGTERM, which flushes its output) and waits.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Messages returns what rsyslogd has written so far, in order.
func (s *Server) Messages(t testing.TB) []Message {
	t.Helper()
	b, err := os.ReadFile(s.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	// Only whole lines: the last may be being written.
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	var out []Message
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		p := strings.SplitN(strings.TrimSuffix(line, "\n"), "\t", 8)
		if len(p) != 8 {
			t.Fatalf("rsyslogd wrote an unexpected line %q", line)
		}
		out = append(out, Message{Pri: p[0], Time: p[1], Host: p[2], App: p[3], ProcID: p[4], MsgID: p[5], SD: p[6], Msg: []byte(p[7])})
	}
	return out
}
