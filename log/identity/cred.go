package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentlog/agentlog"
	jsonv2 "github.com/go-json-experiment/json"

	"github.com/agentlog/agentlog/log/config"
)

// newCredential returns a fresh credential with prefix
// (agentlog.TokenPrefix or agentlog.SessionPrefix), its id and the hash of
// its secret: the store keeps only the hash.
func newCredential(prefix string) (id, cred string, hash [32]byte) {
	id, cred, secret := agentlog.NewCredential(prefix)
	return id, cred, sha256.Sum256(secret)
}

// Limits of identity fields, in bytes.
const (
	maxTaskLen = 256  // task ids
	maxTextLen = 1024 // owner, description
)

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

// ParseOpenRequest parses and checks the shape of a session-open request
// (strict JSON, as for appends). The signature, freshness and nonce are
// checked by [Store.OpenSession].
func ParseOpenRequest(body []byte) (*agentlog.SessionRequest, time.Time, []byte, error) {
	var r agentlog.SessionRequest
	if err := jsonv2.Unmarshal(body, &r, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, time.Time{}, nil, fmt.Errorf("%w: not a valid session request: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
	}
	if !agentlog.ValidID(r.Agent) {
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
	if err != nil || len(n) < agentlog.MinNonceLen || len(n) > agentlog.MaxNonceLen {
		return nil, time.Time{}, nil, fmt.Errorf("%w: \"nonce\" must be %d to %d bytes in unpadded base64url", ErrInvalid, agentlog.MinNonceLen, agentlog.MaxNonceLen)
	}
	if r.Config != "" && !config.ValidDigest(r.Config) {
		return nil, time.Time{}, nil, fmt.Errorf("%w: \"config\" must be a configuration digest, \"sha256:\" and 64 lowercase hex digits", ErrInvalid)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(r.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, time.Time{}, nil, fmt.Errorf("%w: \"sig\" must be a %d-byte Ed25519 signature in standard base64", ErrInvalid, ed25519.SignatureSize)
	}
	return &r, t, sig, nil
}
