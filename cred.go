package agentlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error of this package's parsers: the
// input is not in the format. Every ErrInvalid of agentlog's packages
// matches it too ([Invalid]), so a server maps it alone to 400.
var ErrInvalid = errors.New("invalid request")

// ErrNotFound is matched by every ErrNotFound of agentlog's packages
// ([NotFound]): what was asked for does not exist (yet), a 404.
var ErrNotFound = errors.New("not found")

// Invalid returns a sentinel error with its own text that also matches
// errors.Is(err, ErrInvalid): the ErrInvalid of a package that validates
// input.
func Invalid(text string) error { return &kindError{text, ErrInvalid} }

// NotFound returns a sentinel error with its own text that also matches
// errors.Is(err, ErrNotFound).
func NotFound(text string) error { return &kindError{text, ErrNotFound} }

type kindError struct {
	text string
	kind error
}

func (e *kindError) Error() string        { return e.text }
func (e *kindError) Is(target error) bool { return target == e.kind }

// Credential prefixes. A credential is PREFIX + ID + "." + SECRET where ID
// is 16 lowercase hex digits naming the stored token or session and SECRET
// is 32 random bytes in unpadded base64url; a server keeps only
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

const (
	credIDLen     = 16 // hex digits of a token or session id
	credSecretLen = 32 // bytes of a credential secret
)

// ParseCredential splits a bearer credential into its kind, id and secret.
// It only checks the shape; whether the credential is valid is for the
// server to say. Errors wrap ErrInvalid.
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
	if err != nil || len(secret) != credSecretLen {
		return "", "", nil, fmt.Errorf("%w: malformed %s credential secret", ErrInvalid, kind)
	}
	return kind, id, secret, nil
}

// NewCredential returns a fresh credential with the given prefix
// (TokenPrefix or SessionPrefix), its id and its secret.
func NewCredential(prefix string) (id, cred string, secret []byte) {
	var b [8 + credSecretLen]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	id = hex.EncodeToString(b[:8])
	cred = prefix + id + "." + base64.RawURLEncoding.EncodeToString(b[8:])
	return id, cred, b[8:]
}

func validHexID(s string) bool {
	if len(s) != credIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// MaxIDLen is the longest agent id or token name, in bytes.
const MaxIDLen = 64

// ValidID reports whether s is a valid agent id or token name: 1 to 64
// bytes of ASCII letters, digits, '.', '_', '-', starting with a letter or
// digit. Such ids need no escaping in leaves, file names or URLs.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
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

// KeyFilePrefix starts an agent key file: the single line
// "AGENTLOG-AGENT-KEY+<agent id>+<base64 of the 32-byte Ed25519 seed>".
const KeyFilePrefix = "AGENTLOG-AGENT-KEY+"

// FormatKeyFile returns the contents of an agent key file.
func FormatKeyFile(agent string, key ed25519.PrivateKey) string {
	return KeyFilePrefix + agent + "+" + base64.StdEncoding.EncodeToString(key.Seed()) + "\n"
}

// GenerateAgentKey returns a new agent key and its key-file text.
func GenerateAgentKey(agent string) (ed25519.PrivateKey, string) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return priv, FormatKeyFile(agent, priv)
}

// ParseKeyFile reads an agent key file: its agent id (which must satisfy
// ValidID) and key.
func ParseKeyFile(text string) (agent string, key ed25519.PrivateKey, err error) {
	s := strings.TrimSpace(text)
	rest, ok := strings.CutPrefix(s, KeyFilePrefix)
	if !ok {
		return "", nil, fmt.Errorf("not an agentlog agent key (want %s<id>+<seed>)", KeyFilePrefix)
	}
	id, seed, ok := strings.Cut(rest, "+")
	if !ok || !ValidID(id) {
		return "", nil, errors.New("agent key file has no valid agent id")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(seed)
	if err != nil || len(b) != ed25519.SeedSize {
		return "", nil, fmt.Errorf("agent key file seed is not %d bytes of base64", ed25519.SeedSize)
	}
	return id, ed25519.NewKeyFromSeed(b), nil
}

// SessionRequest is the body of POST /v1/sessions: an agent's signed,
// fresh, single-use request for a session credential.
type SessionRequest struct {
	Agent string `json:"agent"`
	Task  string `json:"task"`
	// TTL is the session lifetime asked for, in seconds; 0 takes the
	// server's default.
	TTL   int64  `json:"ttl_seconds,omitempty"`
	Time  string `json:"time"`  // RFC 3339, the agent's clock when signing
	Nonce string `json:"nonce"` // 16 to 64 random bytes in unpadded base64url
	// Config is the digest ("sha256:<hex>" of the RFC 8785 form) of the
	// agent configuration the session runs under; empty declares none.
	// Every action of the session carries it (docs/changes.md).
	Config string `json:"config,omitempty"`
	Sig    string `json:"sig"` // Ed25519 signature of SignedBytes, standard base64
}

// Session-request nonce sizes, in bytes before encoding.
const (
	MinNonceLen = 16
	MaxNonceLen = 64
)

// NewSessionRequest returns a session request of agent for task, signed
// with the agent's key at time now with a fresh 18-byte nonce. ttl is
// rounded down to seconds.
func NewSessionRequest(agent, task string, ttl time.Duration, now time.Time, key ed25519.PrivateKey) *SessionRequest {
	return NewConfiguredSessionRequest(agent, task, "", ttl, now, key)
}

// NewConfiguredSessionRequest is NewSessionRequest for a session that
// declares the configuration digest config ("" declares none).
func NewConfiguredSessionRequest(agent, task, config string, ttl time.Duration, now time.Time, key ed25519.PrivateKey) *SessionRequest {
	var nonce [18]byte
	rand.Read(nonce[:])
	r := &SessionRequest{Agent: agent, Task: task, TTL: int64(ttl / time.Second), Time: now.UTC().Format(time.RFC3339Nano), Nonce: base64.RawURLEncoding.EncodeToString(nonce[:]), Config: config}
	r.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, r.SignedBytes()))
	return r
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
//
// and, only when the request declares a configuration, a seventh line
//
//	config <config digest>
func (r *SessionRequest) SignedBytes() []byte {
	b := "agentlog session open v1\n" +
		"agent " + r.Agent + "\n" +
		"task " + r.Task + "\n" +
		"ttl " + strconv.FormatInt(r.TTL, 10) + "\n" +
		"time " + r.Time + "\n" +
		"nonce " + r.Nonce + "\n"
	if r.Config != "" {
		b += "config " + r.Config + "\n"
	}
	return []byte(b)
}

// SessionInfo is the answer to POST /v1/sessions: the session credential,
// shown only here, and what it is bound to.
type SessionInfo struct {
	Session    string    `json:"session"` // the session id, as leaves carry it
	Credential string    `json:"credential"`
	Agent      string    `json:"agent"`
	Task       string    `json:"task"`
	Expires    time.Time `json:"expires"`
}
