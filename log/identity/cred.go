package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"

	alog "github.com/agentlog/agentlog/log"
)

// Credential prefixes. A credential is PREFIX + ID + "." + SECRET where ID
// is 16 lowercase hex digits naming the stored token or session and SECRET
// is 32 random bytes in unpadded base64url; the server keeps only
// SHA-256(SECRET).
const (
	TokenPrefix   = "agentlog-token-v1."
	SessionPrefix = "agentlog-session-v1."
)

// Kinds of credential, as returned by ParseCredential.
const (
	CredToken   = "token"
	CredSession = "session"
)

// ParseCredential splits a bearer credential into its kind, id and secret.
// It only checks the shape; whether the credential is valid is for the
// store to say.
func ParseCredential(s string) (kind, id string, secret []byte, err error) {
	var rest string
	switch {
	case strings.HasPrefix(s, TokenPrefix):
		kind, rest = CredToken, s[len(TokenPrefix):]
	case strings.HasPrefix(s, SessionPrefix):
		kind, rest = CredSession, s[len(SessionPrefix):]
	default:
		return "", "", nil, fmt.Errorf("%w: not an agentlog token or session credential", ErrInvalid)
	}
	id, sec, ok := strings.Cut(rest, ".")
	if !ok || !validHexID(id) {
		return "", "", nil, fmt.Errorf("%w: malformed %s credential", ErrInvalid, kind)
	}
	secret, err = base64.RawURLEncoding.Strict().DecodeString(sec)
	if err != nil || len(secret) != secretLen {
		return "", "", nil, fmt.Errorf("%w: malformed %s credential secret", ErrInvalid, kind)
	}
	return kind, id, secret, nil
}

const (
	idLen     = 16 // hex digits of a token or session id
	secretLen = 32 // bytes of a credential secret
)

func validHexID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// newCredential returns a fresh id, the credential text and the hash of
// its secret.
func newCredential(prefix string) (id, cred string, hash [32]byte) {
	var b [8 + secretLen]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	id = hex.EncodeToString(b[:8])
	cred = prefix + id + "." + base64.RawURLEncoding.EncodeToString(b[8:])
	return id, cred, sha256.Sum256(b[8:])
}

// Limits of identity fields, in bytes.
const (
	maxIDLen   = 64   // agent ids and token names
	maxTaskLen = 256  // task ids
	maxTextLen = 1024 // owner, description
	maxNonce   = 64
	minNonce   = 16 // bytes of entropy a nonce should carry, as base64url ~ 22 chars
)

// ValidID reports whether s is a valid agent id or token name: 1 to 64
// bytes of ASCII letters, digits, '.', '_', '-', starting with a letter or
// digit. Such ids need no escaping in leaves, file names or URLs.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// validText checks a free-text field: UTF-8, no control characters, at most
// max bytes.
func validText(name, s string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return fmt.Errorf("%w: %q is required", ErrInvalid, name)
	case len(s) > max:
		return fmt.Errorf("%w: %q is %d bytes, at most %d allowed", ErrInvalid, name, len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalid, name)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%w: %q contains a control character", ErrInvalid, name)
	}
	return nil
}

// OpenRequest is the body of POST /v1/sessions: an agent's signed, fresh,
// single-use request for a session credential.
type OpenRequest struct {
	Agent string `json:"agent"`
	Task  string `json:"task"`
	// TTL is the session lifetime asked for, in seconds; 0 takes the
	// server's default.
	TTL   int64  `json:"ttl_seconds,omitempty"`
	Time  string `json:"time"`  // RFC 3339, the agent's clock when signing
	Nonce string `json:"nonce"` // 16 to 64 random bytes in unpadded base64url
	Sig   string `json:"sig"`   // Ed25519 signature of SignedBytes, standard base64
}

// ParseOpenRequest parses and checks the shape of a session-open request
// (strict JSON, as for appends). The signature, freshness and nonce are
// checked by [Store.OpenSession].
func ParseOpenRequest(body []byte) (*OpenRequest, time.Time, []byte, error) {
	var r OpenRequest
	if err := jsonv2.Unmarshal(body, &r, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, time.Time{}, nil, fmt.Errorf("%w: not a valid session request: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
	}
	if !ValidID(r.Agent) {
		return nil, time.Time{}, nil, fmt.Errorf("%w: \"agent\" must be a valid agent id", ErrInvalid)
	}
	if err := validText("task", r.Task, maxTaskLen, true); err != nil {
		return nil, time.Time{}, nil, err
	}
	if r.TTL < 0 {
		return nil, time.Time{}, nil, fmt.Errorf("%w: \"ttl_seconds\" must not be negative", ErrInvalid)
	}
	t, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil || len(r.Time) > 40 {
		return nil, time.Time{}, nil, fmt.Errorf("%w: \"time\" must be an RFC 3339 time", ErrInvalid)
	}
	n, err := base64.RawURLEncoding.Strict().DecodeString(r.Nonce)
	if err != nil || len(n) < minNonce || len(n) > maxNonce {
		return nil, time.Time{}, nil, fmt.Errorf("%w: \"nonce\" must be %d to %d bytes in unpadded base64url", ErrInvalid, minNonce, maxNonce)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(r.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, time.Time{}, nil, fmt.Errorf("%w: \"sig\" must be a %d-byte Ed25519 signature in standard base64", ErrInvalid, ed25519.SignatureSize)
	}
	return &r, t, sig, nil
}

// SignedBytes is the message an agent signs to open a session: six lines,
// each ending in "\n":
//
//	agentlog session open v1
//	agent <agent>
//	task <task>
//	ttl <ttl_seconds, decimal>
//	time <time, exactly as sent>
//	nonce <nonce, exactly as sent>
func (r *OpenRequest) SignedBytes() []byte {
	var b bytes.Buffer
	b.WriteString("agentlog session open v1\n")
	b.WriteString("agent " + r.Agent + "\n")
	b.WriteString("task " + r.Task + "\n")
	b.WriteString("ttl " + strconv.FormatInt(r.TTL, 10) + "\n")
	b.WriteString("time " + r.Time + "\n")
	b.WriteString("nonce " + r.Nonce + "\n")
	return b.Bytes()
}

// RecordSignedBytes is the message an agent signs for one record, built
// from fields that all appear in the record's leaf, so anyone holding the
// leaf and the agent's registered key can check it. Ten lines, each ending
// in "\n":
//
//	agentlog record v1
//	agent <agent>
//	session <session id>
//	task <task>
//	seq <seq, decimal; 0 when none>
//	action <action>
//	tool <tool>
//	resource <resource>
//	outcome <outcome>
//	attributes <attributes as compact JSON, member order kept; empty when none>
//
// None of the values can contain a newline: strings refuse control
// characters and compact JSON has none.
func RecordSignedBytes(agent, session, task string, r *alog.Record) []byte {
	var b bytes.Buffer
	b.Grow(128 + len(r.Action) + len(r.Tool) + len(r.Resource) + len(r.Outcome) + len(r.Attributes))
	b.WriteString("agentlog record v1\n")
	for _, f := range [...][2]string{
		{"agent", agent}, {"session", session}, {"task", task}, {"seq", strconv.FormatUint(r.Seq, 10)},
		{"action", r.Action}, {"tool", r.Tool}, {"resource", r.Resource}, {"outcome", r.Outcome},
		{"attributes", string(r.Attributes)},
	} {
		b.WriteString(f[0])
		b.WriteByte(' ')
		b.WriteString(f[1])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// VerifyLeaf checks the agent signature carried by a leaf against the
// agent's registered public key. It returns an error if the leaf has no
// signature or it does not verify.
func VerifyLeaf(leaf *alog.Leaf, pub ed25519.PublicKey) error {
	if len(leaf.Sig) == 0 {
		return fmt.Errorf("leaf carries no agent signature")
	}
	r := alog.Record{Action: leaf.Action, Tool: leaf.Tool, Resource: leaf.Resource, Outcome: leaf.Outcome, Attributes: leaf.Attributes, Seq: leaf.Seq}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, RecordSignedBytes(leaf.Agent, leaf.Session, leaf.Task, &r), leaf.Sig) {
		return fmt.Errorf("agent signature of the leaf does not verify with the key of %q", leaf.Agent)
	}
	return nil
}

// KeyFilePrefix starts an agent key file: the single line
// "AGENTLOG-AGENT-KEY+<agent id>+<base64 of the 32-byte Ed25519 seed>".
const KeyFilePrefix = "AGENTLOG-AGENT-KEY+"

// FormatKeyFile returns the contents of an agent key file.
func FormatKeyFile(agent string, key ed25519.PrivateKey) string {
	return KeyFilePrefix + agent + "+" + base64.StdEncoding.EncodeToString(key.Seed()) + "\n"
}

// ParseKeyFile reads an agent key file.
func ParseKeyFile(text string) (agent string, key ed25519.PrivateKey, err error) {
	s := strings.TrimSpace(text)
	if !strings.HasPrefix(s, KeyFilePrefix) {
		return "", nil, fmt.Errorf("%w: not an agentlog agent key (want %s<id>+<seed>)", ErrInvalid, KeyFilePrefix)
	}
	id, seed, ok := strings.Cut(s[len(KeyFilePrefix):], "+")
	if !ok || !ValidID(id) {
		return "", nil, fmt.Errorf("%w: agent key file has no valid agent id", ErrInvalid)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(seed)
	if err != nil || len(b) != ed25519.SeedSize {
		return "", nil, fmt.Errorf("%w: agent key file seed is not %d bytes of base64", ErrInvalid, ed25519.SeedSize)
	}
	return id, ed25519.NewKeyFromSeed(b), nil
}
