package sink

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// SDID is the structured data element of every syslog message: the
// entry's index and the log's origin, as [agentlog@32473 index="N"
// origin="O"]. 32473 is the enterprise number RFC 5612 reserves for
// documentation; agentlog has none of its own.
const SDID = "agentlog@32473"

// syslogSink writes RFC 5424 messages over TCP, framed by octet counting
// (RFC 6587 3.4.1, the framing RFC 5425 prescribes over TLS): "LEN SP MSG".
// A message is
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [agentlog@32473 index="N" origin="O"] EVENT
//
// with PRI the facility (default 13, log audit) times 8 plus the severity
// mapped from the event's severity_id, TIMESTAMP the entry's time, MSGID
// "ocsf", and EVENT the OCSF event's JSON (MSG-ANY, without a BOM).
//
// TCP has no acknowledgement: a batch counts as delivered once the kernel
// has taken all of it. What a receiver had not read when it crashed, or a
// connection that breaks after the write, can lose events the sink
// counted; the next batch is sent on a new connection.
type syslogSink struct {
	addr     string
	tls      *tls.Config
	host     string
	app      string
	facility int
	origin   string
	conn     net.Conn
}

func newSyslog(s Sink, tc *tls.Config, origin string) *syslogSink {
	d := &syslogSink{addr: s.Address, tls: tc, host: s.Hostname, app: s.AppName, facility: 13, origin: origin}
	if d.host == "" {
		d.host, _ = os.Hostname()
		if !printASCII(d.host, 255) || d.host == "" {
			d.host = "-"
		}
	}
	if d.app == "" {
		d.app = "agentlog"
	}
	if s.Facility != nil {
		d.facility = *s.Facility
	}
	if d.tls != nil && d.tls.ServerName == "" {
		host, _, _ := net.SplitHostPort(s.Address)
		d.tls = d.tls.Clone()
		d.tls.ServerName = host
	}
	return d
}

// severity maps OCSF severity_id to a syslog severity.
func severity(id int) int {
	switch id {
	case 2: // Low
		return 5 // notice
	case 3: // Medium
		return 4 // warning
	case 4: // High
		return 3 // error
	case 5: // Critical
		return 2 // critical
	case 6: // Fatal
		return 1 // alert
	}
	return 6 // informational, unknown, other
}

// sdEscape escapes a PARAM-VALUE (RFC 5424 6.3.3).
var sdEscape = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)

// message is one syslog message, without framing.
func (d *syslogSink) message(e Event) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 %s %s %s - ocsf [%s index=\"%d\" origin=\"%s\"] ", d.facility*8+severity(e.Severity),
		e.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), d.host, d.app, SDID, e.Index, sdEscape.Replace(d.origin))
	b.Write(e.JSON)
	return b.Bytes()
}

func (d *syslogSink) dial(ctx context.Context) error {
	dl := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	var c net.Conn
	var err error
	if d.tls != nil {
		c, err = (&tls.Dialer{NetDialer: dl, Config: d.tls}).DialContext(ctx, "tcp", d.addr)
	} else {
		c, err = dl.DialContext(ctx, "tcp", d.addr)
	}
	if err != nil {
		return err
	}
	d.conn = c
	return nil
}

// closedByPeer reports whether the receiver closed the connection (it
// never writes: a read that does not time out at once means EOF or an
// error).
func (d *syslogSink) closedByPeer() bool {
	if d.tls != nil {
		// A TLS read may consume a record; receivers do not send any.
		d.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	} else {
		d.conn.SetReadDeadline(time.Now())
	}
	var one [1]byte
	_, err := d.conn.Read(one[:])
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

func (d *syslogSink) Send(ctx context.Context, batch []Event) error {
	if d.conn != nil && d.closedByPeer() {
		d.conn.Close()
		d.conn = nil
	}
	if d.conn == nil {
		if err := d.dial(ctx); err != nil {
			return fmt.Errorf("connecting to %s: %w", d.addr, err)
		}
	}
	var buf bytes.Buffer
	for _, e := range batch {
		m := d.message(e)
		buf.WriteString(strconv.Itoa(len(m)))
		buf.WriteByte(' ')
		buf.Write(m)
	}
	d.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(d.conn, &buf); err != nil {
		d.conn.Close()
		d.conn = nil
		return fmt.Errorf("writing to %s: %w", d.addr, err)
	}
	return nil
}

func (d *syslogSink) Close() error {
	if d.conn == nil {
		return nil
	}
	err := d.conn.Close()
	d.conn = nil
	return err
}
