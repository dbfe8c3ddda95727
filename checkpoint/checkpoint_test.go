package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	cosig "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

const (
	exampleLogSKey  = "PRIVATE+KEY+example.com/agentlog+caec1adf+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
	exampleTimeSKey = "PRIVATE+KEY+example.com/agentlog/time+0ee49295+BAICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIC"
)

func testKeys(t testing.TB, now func() time.Time) *Keys {
	t.Helper()
	k, err := NewKeys(testOrigin, exampleLogSKey, exampleTimeSKey, now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testRoot(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func TestSignOpenRoundTrip(t *testing.T) {
	// The timestamp comes from the keys' clock, here a fixed time.
	at := time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)
	k := testKeys(t, func() time.Time { return at })
	root := testRoot("root")
	raw, err := Sign(k, 12345, root)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(raw, k.LogVerifier, k.TimeVerifier)
	if err != nil {
		t.Fatal(err)
	}
	if s.Origin != testOrigin || s.Size != 12345 || !bytes.Equal(s.Root, root) || !bytes.Equal(s.Raw, raw) {
		t.Errorf("Open returned %+v", s)
	}
	if want := at.Truncate(time.Second); !s.Time.Equal(want) {
		t.Errorf("Time = %v, want %v", s.Time, want)
	}
	if len(s.Note.Sigs) != 2 {
		t.Errorf("%d verified signatures, want 2", len(s.Note.Sigs))
	}

	// Without the time verifier, the time is not read.
	s, err = Open(raw, k.LogVerifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Time.IsZero() {
		t.Errorf("Time = %v without a time verifier", s.Time)
	}

	// WithClock replaces the time source without changing k.
	later := at.Add(time.Hour)
	raw, err = Sign(k.WithClock(func() time.Time { return later }), 1, root)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(raw, k.LogVerifier, k.TimeVerifier); err != nil || !s.Time.Equal(later.Truncate(time.Second)) {
		t.Errorf("WithClock: %v, %v", s, err)
	}
	if raw, _ := Sign(k, 1, root); !bytes.Contains(raw, []byte("\n1\n")) {
		t.Fatal("Sign failed")
	} else if s, _ := Open(raw, k.LogVerifier, k.TimeVerifier); !s.Time.Equal(at.Truncate(time.Second)) {
		t.Errorf("WithClock changed the original keys' clock: %v", s.Time)
	}

	// SignAt uses the given time.
	raw, err = SignAt(k, 1, root, time.Unix(1800000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(raw, k.LogVerifier, k.TimeVerifier); err != nil || s.Time.Unix() != 1800000000 {
		t.Errorf("SignAt: %v, %v", s, err)
	}

	if _, err := Sign(k, 1, root[:31]); err == nil {
		t.Error("signed a 31-byte root")
	}
}

// TestIndependentVerifiers checks a checkpoint with x/mod's note, formats'
// log and cosignature packages, and by hand from the C2SP specs.
func TestIndependentVerifiers(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	k := testKeys(t, func() time.Time { return at })
	root := testRoot("independent")
	raw, err := Sign(k, 7, root)
	if err != nil {
		t.Fatal(err)
	}

	// x/mod note with the log key alone: the time signature is unknown to it.
	logV, err := note.NewVerifier(k.LogVKey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(raw, note.VerifierList(logV))
	if err != nil {
		t.Fatalf("x/mod note.Open: %v", err)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != testOrigin || len(n.UnverifiedSigs) != 1 {
		t.Errorf("x/mod note.Open: sigs %v, unverified %v", n.Sigs, n.UnverifiedSigs)
	}

	// formats: checkpoint parsing and the cosignature time.
	timeV, err := cosig.NewVerifierForCosignatureV1(k.TimeVKey)
	if err != nil {
		t.Fatal(err)
	}
	cp, rest, n, err := log.ParseCheckpoint(raw, testOrigin, logV, timeV)
	if err != nil {
		t.Fatalf("formats ParseCheckpoint: %v", err)
	}
	if cp.Size != 7 || !bytes.Equal(cp.Hash, root) || len(rest) != 0 {
		t.Errorf("formats parsed %+v, rest %q", cp, rest)
	}
	var found bool
	for _, sig := range n.Sigs {
		if sig.Name == timeV.Name() && sig.Hash == timeV.KeyHash() {
			ts, err := cosig.CoSigV1Timestamp(sig)
			if err != nil {
				t.Fatal(err)
			}
			if !ts.Equal(at) {
				t.Errorf("CoSigV1Timestamp = %v, want the clock's %v", ts, at)
			}
			found = true
		}
	}
	if !found {
		t.Error("formats did not verify the timestamp signature")
	}

	// By hand, from c2sp.org/signed-note and c2sp.org/tlog-cosignature.
	text, sigs, _ := strings.Cut(string(raw), "\n\n")
	text += "\n"
	wantText := testOrigin + "\n7\n" + base64.StdEncoding.EncodeToString(root) + "\n"
	if text != wantText {
		t.Fatalf("body %q, want %q", text, wantText)
	}
	lines := strings.Split(strings.TrimSuffix(sigs, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d signature lines, want 2", len(lines))
	}
	prefix := "— " + testOrigin + "/time "
	if !strings.HasPrefix(lines[1], prefix) {
		t.Fatalf("second signature line %q", lines[1])
	}
	sig, err := base64.StdEncoding.DecodeString(lines[1][len(prefix):])
	if err != nil || len(sig) != 4+8+64 {
		t.Fatalf("timestamp signature of %d bytes (%v), want 76", len(sig), err)
	}
	vk, _ := base64.StdEncoding.DecodeString(strings.Split(k.TimeVKey, "+")[2])
	if vk[0] != 0x04 {
		t.Fatalf("time.pub has type 0x%02x, want 0x04", vk[0])
	}
	id := sha256.Sum256(append([]byte(testOrigin+"/time\n"), vk...))
	if !bytes.Equal(sig[:4], id[:4]) {
		t.Errorf("key ID %x, want %x", sig[:4], id[:4])
	}
	secs := binary.BigEndian.Uint64(sig[4:12])
	if int64(secs) != at.Unix() {
		t.Errorf("timestamp %d, want %d", secs, at.Unix())
	}
	msg := "cosignature/v1\ntime " + strconv.FormatUint(secs, 10) + "\n" + text
	if !ed25519.Verify(ed25519.PublicKey(vk[1:]), []byte(msg), sig[12:]) {
		t.Error("the timestamp signature does not verify by hand")
	}
}

func TestOpenRejects(t *testing.T) {
	k := testKeys(t, func() time.Time { return time.Unix(1767323045, 0) })
	root := testRoot("x")
	raw, err := Sign(k, 42, root)
	if err != nil {
		t.Fatal(err)
	}
	text, sigs, _ := strings.Cut(string(raw), "\n\n")
	sigLines := strings.SplitAfter(sigs, "\n")
	logOnly, err := note.Sign(&note.Note{Text: text + "\n"}, k.LogSigner)
	if err != nil {
		t.Fatal(err)
	}
	timeOnly, err := note.Sign(&note.Note{Text: text + "\n"}, k.TimeSigner)
	if err != nil {
		t.Fatal(err)
	}
	signBody := func(body string) []byte {
		b, err := note.Sign(&note.Note{Text: body}, k.LogSigner, k.TimeSigner)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	flip := func(line string) string { // corrupt the last signature byte
		b64 := line[strings.LastIndex(line, " ")+1 : len(line)-1]
		b, _ := base64.StdEncoding.DecodeString(b64)
		b[len(b)-1] ^= 1
		return line[:strings.LastIndex(line, " ")+1] + base64.StdEncoding.EncodeToString(b) + "\n"
	}
	rootB64 := base64.StdEncoding.EncodeToString(root)
	for _, tc := range []struct {
		name  string
		raw   []byte
		timeV bool
	}{
		{"tampered size", []byte(strings.Replace(string(raw), "\n42\n", "\n43\n", 1)), false},
		{"tampered root", []byte(strings.Replace(string(raw), rootB64, base64.StdEncoding.EncodeToString(testRoot("y")), 1)), false},
		{"tampered log signature", []byte(text + "\n\n" + flip(sigLines[0]) + sigLines[1]), false},
		{"tampered time signature", []byte(text + "\n\n" + sigLines[0] + flip(sigLines[1])), true},
		{"missing time signature", logOnly, true},
		{"time signature only", timeOnly, false},
		{"time signature only, time verifier", timeOnly, true},
		{"extension line", signBody(text + "\nextension\n"), false},
		{"leading zero", signBody(strings.Replace(text, "\n42\n", "\n042\n", 1) + "\n"), false},
		{"short root", signBody(testOrigin + "\n42\n" + base64.StdEncoding.EncodeToString(root[:31]) + "\n"), false},
		{"other origin", signBody("example.com/other\n42\n" + rootB64 + "\n"), false},
		{"empty", nil, false},
		{"no signatures", []byte(text + "\n\n"), false},
		{"too large", bytes.Repeat([]byte("a"), MaxSize+1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var timeV note.Verifier
			if tc.timeV {
				timeV = k.TimeVerifier
			}
			if s, err := Open(tc.raw, k.LogVerifier, timeV); err == nil {
				t.Errorf("Open accepted it: %+v", s)
			}
		})
	}
	if _, err := Open(logOnly, k.LogVerifier, k.TimeVerifier); !errors.Is(err, ErrNoTimestamp) {
		t.Errorf("missing timestamp: error %v does not wrap ErrNoTimestamp", err)
	}
	if _, err := Open(logOnly, k.LogVerifier, nil); err != nil {
		t.Errorf("a checkpoint without timestamp is valid without a time verifier: %v", err)
	}
	if _, err := Open(raw, nil, nil); err == nil {
		t.Error("Open accepted a nil log verifier")
	}
}

func TestOpenIgnoresWitnessCosignatures(t *testing.T) {
	k := testKeys(t, nil)
	raw, err := Sign(k, 3, testRoot("w"))
	if err != nil {
		t.Fatal(err)
	}
	wskey, _, err := GenerateTimeKey(nil, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	w, err := cosig.NewSignerForCosignatureV1(wskey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(raw, note.VerifierList(k.LogVerifier))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, w)
	if err != nil {
		t.Fatal(err)
	}
	// note.Sign keeps only n.Sigs; add back the timestamp line.
	cosigned = append(cosigned, raw[bytes.LastIndex(raw, []byte("— "+testOrigin+"/time")):]...)
	s, err := Open(cosigned, k.LogVerifier, k.TimeVerifier)
	if err != nil {
		t.Fatalf("Open with a witness cosignature: %v", err)
	}
	if s.Size != 3 || len(s.Note.UnverifiedSigs) != 1 {
		t.Errorf("got size %d, %d unverified sigs", s.Size, len(s.Note.UnverifiedSigs))
	}
}

func FuzzOpen(f *testing.F) {
	k := testKeys(f, func() time.Time { return time.Unix(1767323045, 0) })
	for _, size := range []uint64{0, 1, 1 << 40} {
		raw, err := Sign(k, size, testRoot(strconv.FormatUint(size, 10)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("example.com/agentlog\n1\nAAAA\n\n— example.com/agentlog AAAAAAAA\n"))
	f.Add([]byte(""))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, timeV := range []note.Verifier{nil, k.TimeVerifier} {
			s, err := Open(raw, k.LogVerifier, timeV)
			if err != nil {
				continue
			}
			// Whatever Open accepts is a checkpoint this package would write.
			body := log.Checkpoint{Origin: s.Origin, Size: s.Size, Hash: s.Root}.Marshal()
			if s.Note.Text != string(body) || s.Origin != testOrigin || len(s.Root) != HashSize {
				t.Fatalf("accepted a non-canonical checkpoint %q", raw)
			}
		}
	})
}
