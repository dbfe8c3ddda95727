package ntptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The NTP packet header of RFC 5905, section 7.3. Extension fields and MACs
// after the 48 bytes are ignored.
const headerSize = 48

const (
	modeClient = 3
	modeServer = 4
)

// packet is an NTP header. Timestamps are kept in wire format.
type packet struct {
	leap      uint8 // leap indicator, 2 bits
	version   uint8 // 3 bits
	mode      uint8 // 3 bits
	stratum   uint8
	poll      int8   // log2 seconds
	precision int8   // log2 seconds
	rootDelay uint32 // NTP short format (16.16 seconds)
	rootDisp  uint32 // NTP short format
	refID     uint32
	refTime   uint64 // NTP timestamp format (32.32 seconds since the era start)
	origin    uint64
	receive   uint64
	transmit  uint64
}

// parsePacket decodes the header of an NTP packet.
func parsePacket(b []byte) (packet, error) {
	if len(b) < headerSize {
		return packet{}, fmt.Errorf("NTP packet of %d bytes is shorter than the %d-byte header", len(b), headerSize)
	}
	p := packet{
		leap:      b[0] >> 6,
		version:   (b[0] >> 3) & 7,
		mode:      b[0] & 7,
		stratum:   b[1],
		poll:      int8(b[2]),
		precision: int8(b[3]),
		rootDelay: binary.BigEndian.Uint32(b[4:]),
		rootDisp:  binary.BigEndian.Uint32(b[8:]),
		refID:     binary.BigEndian.Uint32(b[12:]),
		refTime:   binary.BigEndian.Uint64(b[16:]),
		origin:    binary.BigEndian.Uint64(b[24:]),
		receive:   binary.BigEndian.Uint64(b[32:]),
		transmit:  binary.BigEndian.Uint64(b[40:]),
	}
	if p.version < 1 || p.version > 4 {
		return packet{}, fmt.Errorf("unsupported NTP version %d", p.version)
	}
	return p, nil
}

// marshal encodes the header.
func (p packet) marshal() []byte {
	b := make([]byte, headerSize)
	b[0] = p.leap<<6 | (p.version&7)<<3 | p.mode&7
	b[1] = p.stratum
	b[2] = byte(p.poll)
	b[3] = byte(p.precision)
	binary.BigEndian.PutUint32(b[4:], p.rootDelay)
	binary.BigEndian.PutUint32(b[8:], p.rootDisp)
	binary.BigEndian.PutUint32(b[12:], p.refID)
	binary.BigEndian.PutUint64(b[16:], p.refTime)
	binary.BigEndian.PutUint64(b[24:], p.origin)
	binary.BigEndian.PutUint64(b[32:], p.receive)
	binary.BigEndian.PutUint64(b[40:], p.transmit)
	return b
}

// ntpEpochOffset is the number of seconds from 1900-01-01 (NTP era 0) to
// 1970-01-01 (the Unix epoch).
const ntpEpochOffset = 2208988800

// toNTP encodes t as an NTP timestamp: seconds since the start of t's era in
// the high 32 bits (so it wraps in 2036 as the format does), fraction in the low.
func toNTP(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := (uint64(t.Nanosecond()) << 32) / 1e9
	return secs<<32 | frac
}

// fromNTP decodes an NTP timestamp, choosing the era that puts it closest to
// pivot.
func fromNTP(ts uint64, pivot time.Time) time.Time {
	secs := int64(ts>>32) - ntpEpochOffset
	nanos := int64(((ts & 0xffffffff) * 1e9) >> 32)
	const era = int64(1) << 32
	p := pivot.Unix()
	// Move by whole eras towards the pivot.
	for secs+era/2 < p {
		secs += era
	}
	for secs-era/2 > p {
		secs -= era
	}
	return time.Unix(secs, nanos).UTC()
}

// reply builds the server's answer to a client request, with receive time rx
// and transmit time tx (both already shifted by the server's offset).
func reply(req packet, rx, tx time.Time) (packet, error) {
	if req.mode != modeClient {
		return packet{}, errors.New("not a client request")
	}
	return packet{
		leap:      0,
		version:   req.version,
		mode:      modeServer,
		stratum:   2,
		poll:      req.poll,
		precision: -20,            // about a microsecond
		rootDelay: 1 << 16 / 1000, // about 1 ms
		rootDisp:  1 << 16 / 1000,
		refID:     0x7f000001, // 127.0.0.1, the "upstream" of a stratum 2 server
		refTime:   toNTP(rx.Add(-time.Second)),
		origin:    req.transmit,
		receive:   toNTP(rx),
		transmit:  toNTP(tx),
	}, nil
}
