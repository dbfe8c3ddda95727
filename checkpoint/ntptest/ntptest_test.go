package ntptest

import (
	"bytes"
	"testing"
	"time"

	"github.com/beevik/ntp"
)

func TestServerAnswersBeevikNTP(t *testing.T) {
	for _, offset := range []time.Duration{0, 90 * time.Second, -time.Hour} {
		s := Start(t, offset)
		r, err := ntp.QueryWithOptions(s.Addr(), ntp.QueryOptions{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("offset %v: query: %v", offset, err)
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("offset %v: response does not validate: %v", offset, err)
		}
		if d := r.ClockOffset - offset; d < -time.Second || d > time.Second {
			t.Errorf("measured offset %v, want about %v", r.ClockOffset, offset)
		}
		if r.Stratum != 2 {
			t.Errorf("stratum %d, want 2", r.Stratum)
		}
		if got := s.Requests(); got != 1 {
			t.Errorf("Requests() = %d, want 1", got)
		}
	}
}

func TestSetOffsetAndSilent(t *testing.T) {
	s := Start(t, 0)
	s.SetOffset(10 * time.Minute)
	r, err := ntp.QueryWithOptions(s.Addr(), ntp.QueryOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if d := r.ClockOffset - 10*time.Minute; d < -time.Second || d > time.Second {
		t.Errorf("measured offset %v after SetOffset(10m)", r.ClockOffset)
	}
	s.SetSilent(true)
	if _, err := ntp.QueryWithOptions(s.Addr(), ntp.QueryOptions{Timeout: 200 * time.Millisecond}); err == nil {
		t.Error("a silent server answered")
	}
	if got := s.Requests(); got != 2 {
		t.Errorf("Requests() = %d, want 2 (silent requests count)", got)
	}
	s.SetSilent(false)
	if _, err := ntp.QueryWithOptions(s.Addr(), ntp.QueryOptions{Timeout: 5 * time.Second}); err != nil {
		t.Errorf("server did not answer again after SetSilent(false): %v", err)
	}
}

func TestListenAndClose(t *testing.T) {
	s, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestTimestampRoundTrip(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 28, 3, 29, 0, 123456789, time.UTC),
		time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC), // start of NTP era 1
		time.Date(2040, 1, 1, 0, 0, 0, 500000000, time.UTC),
	} {
		// The 32-bit fraction resolves about 0.23 ns; conversion truncates.
		if got := fromNTP(toNTP(tm), tm); got.After(tm) || tm.Sub(got) > time.Nanosecond {
			t.Errorf("fromNTP(toNTP(%v)) = %v", tm, got)
		}
	}
	// 1900-01-01 is NTP timestamp zero in era 0.
	if got := toNTP(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)); got != 0 {
		t.Errorf("toNTP(1900-01-01) = %#x, want 0", got)
	}
}

func TestPacketRoundTrip(t *testing.T) {
	p := packet{leap: 3, version: 4, mode: modeClient, stratum: 7, poll: 6, precision: -20,
		rootDelay: 1, rootDisp: 2, refID: 3, refTime: 4, origin: 5, receive: 6, transmit: 7}
	q, err := parsePacket(p.marshal())
	if err != nil {
		t.Fatal(err)
	}
	if q != p {
		t.Errorf("round trip: got %+v, want %+v", q, p)
	}
	if _, err := parsePacket(make([]byte, 47)); err == nil {
		t.Error("parsed a 47-byte packet")
	}
}

func FuzzParsePacket(f *testing.F) {
	req := packet{version: 4, mode: modeClient, transmit: 0x1234}.marshal()
	f.Add(req)
	f.Add(append(req, 1, 2, 3, 4))
	f.Add([]byte{})
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePacket(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.marshal(), b[:headerSize]) {
			t.Fatalf("marshal(parse(b)) differs from b's header")
		}
		now := time.Now()
		r, err := reply(p, now, now)
		if p.mode != modeClient {
			if err == nil {
				t.Fatal("replied to a non-client packet")
			}
			return
		}
		if err != nil || r.origin != p.transmit || r.mode != modeServer {
			t.Fatalf("bad reply %+v to %+v: %v", r, p, err)
		}
	})
}
