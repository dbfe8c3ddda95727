package checkpoint

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Signature type bytes of the signed-note format (c2sp.org/signed-note).
const (
	algEd25519       = 0x01 // plain Ed25519 note signature
	algCosignatureV1 = 0x04 // Ed25519 tlog-cosignature v1 (timestamped)
)

// cosigV1Size is the length of a cosignature v1 signature without the key ID:
// an 8-byte big-endian POSIX timestamp followed by an Ed25519 signature.
const cosigV1Size = 8 + ed25519.SignatureSize

// TimeSigner is a [note.Signer] producing c2sp.org/tlog-cosignature v1
// signatures: an 8-byte big-endian POSIX time in seconds followed by an
// Ed25519 signature over
//
//	cosignature/v1
//	time <seconds>
//	<checkpoint body>
//
// The time comes from the function given to [NewTimeSigner] (normally
// [Clock.Now]), not from the system clock, so the log's NTP-anchored time is
// what gets signed. Its signatures verify with
// github.com/transparency-dev/formats/note.NewVerifierForCosignatureV1 and the
// time reads back with formats/note.CoSigV1Timestamp.
//
// A TimeSigner is safe for concurrent use.
type TimeSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
	now  func() time.Time
}

// NewTimeSigner parses a private key of the form
// "PRIVATE+KEY+<name>+<8 hex key ID>+<base64(type || 32-byte Ed25519 seed)>"
// where type is 0x04 (cosignature v1, what [GenerateTimeKey] writes) or 0x01
// (a plain note key, reused as a cosignature key). The key ID must be the
// cosignature v1 key ID, SHA-256(name || "\n" || 0x04 || public key)[:4],
// whatever the type byte. now gives the time to sign; nil means time.Now.
func NewTimeSigner(skey string, now func() time.Time) (*TimeSigner, error) {
	name, seed, hash, err := parsePrivateKey(skey, algEd25519, algCosignatureV1)
	if err != nil {
		return nil, fmt.Errorf("the timestamp signing key is malformed: %w", err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	if want := keyHash(name, algCosignatureV1, pub); hash != want {
		return nil, fmt.Errorf("the timestamp signing key for %q has key ID %08x, but its public key gives %08x", name, hash, want)
	}
	if now == nil {
		now = time.Now
	}
	return &TimeSigner{name: name, hash: hash, key: key, now: now}, nil
}

// GenerateTimeKey generates an Ed25519 cosignature v1 key pair named name,
// reading the 32-byte seed from rand (crypto/rand.Reader if nil). skey is
// accepted by [NewTimeSigner] and by formats/note.NewSignerForCosignatureV1;
// vkey is a verifier key of type 0x04.
func GenerateTimeKey(rand io.Reader, name string) (skey, vkey string, err error) {
	if !validKeyName(name) {
		return "", "", fmt.Errorf("%q is not a valid key name: it must be non-empty UTF-8 without spaces or '+'", name)
	}
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return "", "", err
	}
	h := keyHash(name, algCosignatureV1, pub)
	skey = fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, h,
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, priv.Seed()...)))
	return skey, cosignatureV1VKey(name, pub), nil
}

// Name returns the key name.
func (s *TimeSigner) Name() string { return s.name }

// KeyHash returns the cosignature v1 key ID.
func (s *TimeSigner) KeyHash() uint32 { return s.hash }

// Sign signs msg, a note text, with the time given by the signer's clock,
// truncated to whole seconds.
func (s *TimeSigner) Sign(msg []byte) ([]byte, error) { return s.signAt(s.now(), msg) }

// At returns a signer that signs with the fixed time t instead of the clock.
func (s *TimeSigner) At(t time.Time) note.Signer { return fixedTimeSigner{s, t} }

// VerifierKey returns the cosignature v1 verifier key (type 0x04) matching s.
func (s *TimeSigner) VerifierKey() string {
	return cosignatureV1VKey(s.name, s.key.Public().(ed25519.PublicKey))
}

func (s *TimeSigner) signAt(t time.Time, msg []byte) ([]byte, error) {
	secs := t.Unix()
	if secs < 0 {
		return nil, fmt.Errorf("cannot sign a timestamp before 1970: %v", t)
	}
	sig := make([]byte, 8, cosigV1Size)
	binary.BigEndian.PutUint64(sig, uint64(secs))
	return append(sig, ed25519.Sign(s.key, cosignedMessage(uint64(secs), msg))...), nil
}

// cosignedMessage is the message a cosignature v1 signs.
func cosignedMessage(secs uint64, body []byte) []byte {
	m := make([]byte, 0, len("cosignature/v1\ntime \n")+20+len(body))
	m = append(m, "cosignature/v1\ntime "...)
	m = strconv.AppendUint(m, secs, 10)
	m = append(m, '\n')
	return append(m, body...)
}

type fixedTimeSigner struct {
	s *TimeSigner
	t time.Time
}

func (f fixedTimeSigner) Name() string                    { return f.s.name }
func (f fixedTimeSigner) KeyHash() uint32                 { return f.s.hash }
func (f fixedTimeSigner) Sign(msg []byte) ([]byte, error) { return f.s.signAt(f.t, msg) }

// cosignatureV1VKey encodes an Ed25519 public key as a type 0x04 verifier key.
func cosignatureV1VKey(name string, pub ed25519.PublicKey) string {
	return fmt.Sprintf("%s+%08x+%s", name, keyHash(name, algCosignatureV1, pub),
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, pub...)))
}

// keyHash is the signed-note key ID: SHA-256(name || "\n" || type || key)[:4].
func keyHash(name string, alg byte, pub []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', alg})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// validKeyName reports whether name is a valid signed-note key name:
// non-empty, valid UTF-8, without Unicode spaces or '+'.
// ValidKeyName reports whether name can name a signed-note key (a log's
// origin, a witness's name): non-empty UTF-8 without spaces or '+'.
func ValidKeyName(name string) bool { return validKeyName(name) }

func validKeyName(name string) bool {
	return name != "" && utf8.ValidString(name) &&
		strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// parsePrivateKey splits an Ed25519 signed-note private key whose type byte
// is one of algs, returning its name, seed and declared key ID.
func parsePrivateKey(skey string, algs ...byte) (name string, seed []byte, hash uint32, err error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", nil, 0, errors.New(`it does not start with "PRIVATE+KEY+"`)
	}
	name = parts[2]
	if !validKeyName(name) {
		return "", nil, 0, fmt.Errorf("%q is not a valid key name", name)
	}
	h, err := strconv.ParseUint(parts[3], 16, 32)
	if err != nil || len(parts[3]) != 8 {
		return "", nil, 0, errors.New("the key ID is not 8 hex digits")
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize {
		return "", nil, 0, errors.New("the key material is not a base64 type byte and 32-byte Ed25519 seed")
	}
	for _, a := range algs {
		if key[0] == a {
			return name, key[1:], uint32(h), nil
		}
	}
	return "", nil, 0, fmt.Errorf("key type 0x%02x is not supported here", key[0])
}
