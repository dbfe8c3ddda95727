// Package config is the agent configuration format of agentlog's change
// management (SOC 2 CC8.1): the model an agent runs, its prompts (inline or
// by SHA-256 digest), its tool permissions (the declared scope), its
// framework and free parameters, as one JSON document.
//
// A configuration is identified by its digest, "sha256:" and the lowercase
// hex SHA-256 of the document's canonical form under RFC 8785 (JSON
// Canonicalization Scheme, https://www.rfc-editor.org/rfc/rfc8785): the
// same configuration written with other key order, whitespace, string
// escapes or number spellings has the same digest. Canonicalization is
// jsontext.Value.Canonicalize of github.com/go-json-experiment/json.
//
// The document (docs/changes.md):
//
//	{
//	  "model":      {"provider": "anthropic", "name": "claude-sonnet", "version": "4.5"},
//	  "prompts":    {"system": {"sha256": "<64 hex>"}, "greeting": {"text": "Hello"}},
//	  "scope":      {"tools": ["sql"], "resources": ["customers/*"]},
//	  "framework":  {"name": "langgraph", "version": "0.2"},
//	  "parameters": {"temperature": 0.2}
//	}
//
// Only "model" with its "name" is required. A prompt is its text or the
// digest of its text; in a file read by [Load] it may also be
// {"file": "PATH"} (relative to the configuration file), which Load
// replaces with the file's digest, so that prompt bodies never need to
// leave the machine. The server only ever sees text or digests.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agentlog/agentlog"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// ErrInvalid is wrapped by every error about a configuration document.
var ErrInvalid = agentlog.Invalid("invalid agent configuration")

// MaxSize caps a configuration document, in bytes.
const MaxSize = 64 << 10

// DigestPrefix starts every configuration digest.
const DigestPrefix = "sha256:"

// Config is an agent configuration as decoded.
type Config struct {
	Model      Model             `json:"model"`
	Prompts    map[string]Prompt `json:"prompts,omitempty"`
	Scope      jsontext.Value    `json:"scope,omitempty"` // identity.Scope in its JSON form
	Framework  *Framework        `json:"framework,omitempty"`
	Parameters jsontext.Value    `json:"parameters,omitempty"` // a JSON object
}

// Model names the model an agent runs.
type Model struct {
	Provider string `json:"provider,omitempty"`
	Name     string `json:"name"`
	Version  string `json:"version,omitempty"`
}

// Prompt is a prompt's text, or the SHA-256 of its text (64 lowercase hex
// digits); exactly one is set.
type Prompt struct {
	SHA256 string `json:"sha256,omitempty"`
	Text   string `json:"text,omitempty"`
	File   string `json:"file,omitempty"` // only in files read by Load
}

// Framework names the agent framework and its version.
type Framework struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// Document is a checked configuration with its canonical form and digest.
type Document struct {
	Config    Config
	Canonical []byte // the RFC 8785 form
	Digest    string // "sha256:<hex>" of Canonical
}

// Canonicalize returns the RFC 8785 form of a JSON text. It refuses
// invalid JSON, invalid UTF-8 and duplicate object names.
func Canonicalize(b []byte) ([]byte, error) {
	v := jsontext.Value(bytes.Clone(b))
	if err := v.Canonicalize(); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "jsontext: "))
	}
	return v, nil
}

// DigestOf returns "sha256:<hex>" of canonical bytes.
func DigestOf(canonical []byte) string {
	h := sha256.Sum256(canonical)
	return DigestPrefix + hex.EncodeToString(h[:])
}

// ValidDigest reports whether s is a configuration digest: "sha256:" and
// 64 lowercase hex digits.
func ValidDigest(s string) bool {
	return strings.HasPrefix(s, DigestPrefix) && validHex(s[len(DigestPrefix):])
}

func validHex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Parse checks a configuration document (strict JSON: known names only, no
// duplicates) and returns it with its canonical form and digest. A prompt
// given by file is refused: only [Load] resolves files.
func Parse(b []byte) (*Document, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(b), MaxSize)
	}
	var c Config
	if err := jsonv2.Unmarshal(b, &c, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	canon, err := Canonicalize(b)
	if err != nil {
		return nil, err
	}
	return &Document{Config: c, Canonical: canon, Digest: DigestOf(canon)}, nil
}

func (c *Config) validate() error {
	if strings.TrimSpace(c.Model.Name) == "" {
		return fmt.Errorf("%w: \"model\" must have a \"name\"", ErrInvalid)
	}
	for name, p := range c.Prompts {
		switch {
		case name == "":
			return fmt.Errorf("%w: a prompt has an empty name", ErrInvalid)
		case p.File != "":
			return fmt.Errorf("%w: prompt %q is given by file; send its \"sha256\" (agentlog reads files when it loads a configuration)", ErrInvalid, name)
		case (p.SHA256 == "") == (p.Text == ""):
			return fmt.Errorf("%w: prompt %q needs exactly one of \"text\" or \"sha256\"", ErrInvalid, name)
		case p.SHA256 != "" && !validHex(p.SHA256):
			return fmt.Errorf("%w: prompt %q: \"sha256\" must be 64 lowercase hex digits", ErrInvalid, name)
		}
	}
	if len(c.Scope) > 0 && c.Scope.Kind() != '{' {
		return fmt.Errorf("%w: \"scope\" must be a JSON object (the declared scope)", ErrInvalid)
	}
	if len(c.Parameters) > 0 && c.Parameters.Kind() != '{' {
		return fmt.Errorf("%w: \"parameters\" must be a JSON object", ErrInvalid)
	}
	if c.Framework != nil && strings.TrimSpace(c.Framework.Name) == "" {
		return fmt.Errorf("%w: \"framework\" must have a \"name\"", ErrInvalid)
	}
	return nil
}

// Load reads a configuration file, replaces each prompt given as
// {"file": PATH} (relative to the file's directory) by {"sha256": HEX} of
// that file's bytes, and parses the result.
func Load(path string) (*Document, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the agent configuration: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d", path, ErrInvalid, len(b), MaxSize)
	}
	b, err = resolveFiles(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	d, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// resolveFiles rewrites file prompts as digests.
func resolveFiles(b []byte, dir string) ([]byte, error) {
	var top map[string]jsontext.Value
	if err := jsonv2.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
	}
	raw, ok := top["prompts"]
	if !ok {
		return b, nil
	}
	var prompts map[string]map[string]jsontext.Value
	if err := jsonv2.Unmarshal(raw, &prompts); err != nil {
		return nil, fmt.Errorf("%w: \"prompts\": %s", ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
	}
	changed := false
	for name, p := range prompts {
		f, ok := p["file"]
		if !ok {
			continue
		}
		var file string
		if err := jsonv2.Unmarshal(f, &file); err != nil || file == "" || len(p) != 1 {
			return nil, fmt.Errorf("%w: prompt %q: \"file\" must be a path, alone", ErrInvalid, name)
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		body, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("prompt %q: %w", name, err)
		}
		h := sha256.Sum256(body)
		hv, _ := jsonv2.Marshal(hex.EncodeToString(h[:]))
		prompts[name] = map[string]jsontext.Value{"sha256": hv}
		changed = true
	}
	if !changed {
		return b, nil
	}
	pv, err := jsonv2.Marshal(prompts)
	if err != nil {
		return nil, err
	}
	top["prompts"] = pv
	return jsonv2.Marshal(top)
}

// Change is one difference between two configurations: the JSON path of a
// value (object names joined by ".", array indexes in brackets) and its
// canonical JSON before and after ("" when absent).
type Change struct {
	Path string `json:"path"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

// Diff lists the values that differ between two canonical documents, field
// by field, sorted by path. Prompts compare by digest or text, as given.
// old may be nil (every value is new).
func Diff(old, new []byte) ([]Change, error) {
	a, b := map[string]string{}, map[string]string{}
	if old != nil {
		if err := flatten(old, "", a); err != nil {
			return nil, err
		}
	}
	if err := flatten(new, "", b); err != nil {
		return nil, err
	}
	var out []Change
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, Change{Path: k, Old: v, New: w})
		}
	}
	for k, w := range b {
		if _, ok := a[k]; !ok {
			out = append(out, Change{Path: k, New: w})
		}
	}
	slices.SortFunc(out, func(x, y Change) int { return strings.Compare(x.Path, y.Path) })
	return out, nil
}

// flatten records the scalar leaves (and empty containers) of a JSON value.
func flatten(v jsontext.Value, path string, out map[string]string) error {
	switch v.Kind() {
	case '{':
		var m map[string]jsontext.Value
		if err := jsonv2.Unmarshal(v, &m); err != nil {
			return err
		}
		if len(m) == 0 {
			out[path] = "{}"
		}
		for k, e := range m {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if err := flatten(e, p, out); err != nil {
				return err
			}
		}
	case '[':
		var a []jsontext.Value
		if err := jsonv2.Unmarshal(v, &a); err != nil {
			return err
		}
		if len(a) == 0 {
			out[path] = "[]"
		}
		for i, e := range a {
			if err := flatten(e, fmt.Sprintf("%s[%d]", path, i), out); err != nil {
				return err
			}
		}
	default:
		c, err := Canonicalize(v)
		if err != nil {
			return err
		}
		out[path] = string(c)
	}
	return nil
}
