package vectors

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/agentlog/agentlog/log/config"
)

// Canonical is one vector of the "canonical" list of configs.json: a JSON
// text and its RFC 8785 form, or the reason it has none.
type Canonical struct {
	Name string `json:"name"`
	// JSON is the input text; JSONBase64 holds it instead when it is not
	// valid UTF-8.
	JSON       string `json:"json,omitempty"`
	JSONBase64 string `json:"json_base64,omitempty"`
	Valid      bool   `json:"valid"`
	Canonical  string `json:"canonical,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// ConfigDigest is one vector of the "configs" list of configs.json.
type ConfigDigest struct {
	Name string `json:"name"`
	// Document is the configuration file's text.
	Document string `json:"document"`
	// Files are the files beside it that its prompts name by
	// {"file": NAME}; with files, a client loads the document from a
	// directory holding it and them (as the Go client's LoadConfig does),
	// without, it may also take the text alone.
	Files     map[string]string `json:"files,omitempty"`
	Valid     bool              `json:"valid"`
	Canonical string            `json:"canonical,omitempty"`
	Digest    string            `json:"digest,omitempty"`
	Reason    string            `json:"reason,omitempty"`
}

// configs writes configs.json: RFC 8785 canonical forms (the RFC's own
// examples, section 3.2.2, 3.2.3 and the number samples of appendix B, and
// the edge cases of github.com/go-json-experiment/json the server uses)
// and agent configuration digests as log/config computes them.
func (g *gen) configs() error {
	var cs []Canonical
	can := func(name, in string) {
		c := Canonical{Name: name, JSON: in}
		if !utf8.ValidString(in) {
			c.JSON, c.JSONBase64 = "", base64.StdEncoding.EncodeToString([]byte(in))
		}
		out, err := config.Canonicalize([]byte(in))
		if err != nil {
			c.Reason = "invalid-json"
		} else {
			c.Valid, c.Canonical = true, string(out)
		}
		cs = append(cs, c)
	}
	for _, c := range []struct{ name, in string }{
		{"RFC 8785 3.2.2 primitives", `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`},
		{"RFC 8785 3.2.3 sorting by UTF-16 code units", `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`},
		{"nested objects and arrays", `{"b": [ {"z":1, "a": 2} ], "a": {"y": true, "x": null}, "c": [], "d": {}}`},
		{"a scalar alone", " 5 "},
		{"control characters", `["\u001f\b\t\n\f\r\u0000\u0001"]`},
		{"characters never escaped", `["\u2028\u2029\u007f\/<>&é"]`},
		{"astral characters as surrogate pairs and literal", `{"\ud83d\ude00":"😀","\ud800\udc00":1}`},
		{"negative zero", `[-0, -0.0, 0e5]`},
		{"integers beyond 2^53", `[9007199254740993, 12345678901234567890123, -18446744073709551615]`},
		{"exponent thresholds", `[1e20, 1e21, 1e-6, 1e-7, 123456789012345678901, 0.0000001234]`},
		{"number spellings", `[0.1e1, 10E-1, 1.0, 100e-2, 5e0]`},
		{"beyond the largest double (jsontext keeps the largest)", `[1e400, -1e400]`},
		{"below the smallest double", `[1e-400]`},
		{"duplicate names", `{"a":1,"a":2}`},
		{"duplicate names after unescaping", `{"\u0061":1,"a":2}`},
		{"truncated", `{"a":`},
		{"two values", `[1] [2]`},
		{"invalid UTF-8", "\"\xff\""},
		{"lone high surrogate", `["\ud800"]`},
		{"lone low surrogate", `["\udc00\ud800"]`},
		{"raw control character", "\"\x01\""},
		{"NaN", `[NaN]`},
		{"leading zero", `[01]`},
		{"trailing dot", `[1.]`},
		{"single quotes", `{'a':1}`},
		{"trailing comma", `[1,]`},
	} {
		can(c.name, c.in)
	}
	// Appendix B: IEEE 754 doubles, each given with 17 significant digits
	// in exponent form.
	for _, bits := range []string{"0000000000000000", "8000000000000000", "0000000000000001", "8000000000000001",
		"7fefffffffffffff", "ffefffffffffffff", "4340000000000000", "c340000000000000", "4430000000000000",
		"44b52d02c7e14af5", "44b52d02c7e14af6", "44b52d02c7e14af7", "444b1ae4d6e2ef4e", "444b1ae4d6e2ef4f",
		"444b1ae4d6e2ef50", "3eb0c6f7a0b5ed8c", "3eb0c6f7a0b5ed8d", "41b3de4355555553", "41b3de4355555554",
		"41b3de4355555555", "41b3de4355555556", "41b3de4355555557", "becbf647612f3696", "43143ff3c1cb0959"} {
		u, err := strconv.ParseUint(bits, 16, 64)
		if err != nil {
			return err
		}
		can("RFC 8785 appendix B "+bits, "["+strconv.FormatFloat(math.Float64frombits(u), 'e', 16, 64)+"]")
	}

	const promptText = "You are a careful support agent.\n"
	hexOf := func(s string) string { return strings.TrimPrefix(config.DigestOf([]byte(s)), config.DigestPrefix) }
	var ds []ConfigDigest
	for _, c := range []struct {
		name, doc string
		files     map[string]string
		reason    string
	}{
		{"the documented example", `{
  "model":      {"provider": "anthropic", "name": "claude-sonnet", "version": "4.5"},
  "prompts":    {"system": {"sha256": "` + hexOf(promptText) + `"}, "greeting": {"text": "Hello"}},
  "scope":      {"tools": ["sql"], "resources": ["customers/*"]},
  "framework":  {"name": "langgraph", "version": "0.2"},
  "parameters": {"temperature": 0.2}
}`, nil, ""},
		{"the same, reordered and respelled", `{"parameters":{"temperature":2E-1},"framework":{"version":"0.2","name":"langgraph"},"scope":{"resources":["customers/*"],"tools":["\u0073ql"]},
	"prompts":{"greeting":{"text":"H\u0065llo"},"system":{"sha256":"` + hexOf(promptText) + `"}},"model":{"version":"4.5","name":"claude-sonnet","provider":"anthropic"}}`, nil, ""},
		{"model name only", `{"model":{"name":"gpt"}}`, nil, ""},
		{"free parameters", `{"model":{"name":"m"},"parameters":{"max_tokens":1.024e3,"stop":["\n\n"],"nested":{"b":null,"a":[true,false]},"ε":-0}}`, nil, ""},
		{"nulls where Go allows them", `{"model":{"name":"m","provider":null},"prompts":{"p":{"text":"t","sha256":null}},"framework":null}`, nil, ""},
		{"prompt from a file", `{"model":{"name":"m"},"prompts":{"system":{"file":"system.txt"},"inline":{"text":"hi"}}}`, map[string]string{"system.txt": promptText}, ""},
		{"prompt from a file in a subdirectory", `{"model":{"name":"m"},"prompts":{"system":{"file":"prompts/system.md"}}}`, map[string]string{"prompts/system.md": "# System\n\nBe brief.\n"}, ""},
		{"not an object", `["model"]`, nil, "invalid-config"},
		{"no model", `{"prompts":{}}`, nil, "invalid-config"},
		{"model without a name", `{"model":{"provider":"p"}}`, nil, "invalid-config"},
		{"blank model name", `{"model":{"name":" \t"}}`, nil, "invalid-config"},
		{"model name not a string", `{"model":{"name":5}}`, nil, "invalid-config"},
		{"unknown member", `{"model":{"name":"m"},"tools":[]}`, nil, "invalid-config"},
		{"unknown member, other case", `{"model":{"name":"m"},"Model":{"name":"m"}}`, nil, "invalid-config"},
		{"unknown member of model", `{"model":{"name":"m","size":"xl"}}`, nil, "invalid-config"},
		{"prompt with text and digest", `{"model":{"name":"m"},"prompts":{"p":{"text":"t","sha256":"` + hexOf("t") + `"}}}`, nil, "invalid-config"},
		{"prompt with neither", `{"model":{"name":"m"},"prompts":{"p":{"text":""}}}`, nil, "invalid-config"},
		{"prompt digest in upper case", `{"model":{"name":"m"},"prompts":{"p":{"sha256":"` + strings.ToUpper(hexOf("t")) + `"}}}`, nil, "invalid-config"},
		{"prompt with an empty name", `{"model":{"name":"m"},"prompts":{"":{"text":"t"}}}`, nil, "invalid-config"},
		{"prompt file and text", `{"model":{"name":"m"},"prompts":{"p":{"file":"p.txt","text":"t"}}}`, map[string]string{"p.txt": "t"}, "invalid-config"},
		{"scope not an object", `{"model":{"name":"m"},"scope":["sql"]}`, nil, "invalid-config"},
		{"scope null", `{"model":{"name":"m"},"scope":null}`, nil, "invalid-config"},
		{"parameters not an object", `{"model":{"name":"m"},"parameters":[1]}`, nil, "invalid-config"},
		{"framework without a name", `{"model":{"name":"m"},"framework":{"version":"1"}}`, nil, "invalid-config"},
		{"duplicate member", `{"model":{"name":"m"},"model":{"name":"n"}}`, nil, "invalid-json"},
		{"not JSON", `{"model":{"name":"m"}`, nil, "invalid-json"},
		{"larger than 64 KiB", `{"model":{"name":"m"},"parameters":{"pad":"` + strings.Repeat("x", config.MaxSize) + `"}}`, nil, "too-large"},
	} {
		d := ConfigDigest{Name: c.name, Document: c.doc, Files: c.files}
		doc, err := loadConfig(c.doc, c.files)
		switch {
		case err == nil && c.reason != "":
			return fmt.Errorf("configs: %s: log/config accepts it", c.name)
		case err != nil && c.reason == "":
			return fmt.Errorf("configs: %s: %w", c.name, err)
		case err != nil:
			if !errors.Is(err, config.ErrInvalid) {
				return fmt.Errorf("configs: %s: %w", c.name, err)
			}
			d.Reason = c.reason
		default:
			d.Valid, d.Canonical, d.Digest = true, string(doc.Canonical), doc.Digest
		}
		ds = append(ds, d)
	}
	return g.write("configs.json", map[string]any{
		"description": "Agent configurations (docs/changes.md, package log/config). canonical: a JSON text and its RFC 8785 (JCS) form as the server computes it (github.com/go-json-experiment/json's Canonicalize: numbers as IEEE 754 doubles in ECMAScript form, a magnitude beyond the largest double kept as the largest, names sorted by UTF-16 code units, only \\\" \\\\ and control characters escaped), or reason invalid-json (not one JSON value, duplicate names, invalid UTF-8 or a lone surrogate). configs: an agent configuration file; a prompt given as {\"file\": NAME} is replaced by {\"sha256\": <hex SHA-256 of the file's bytes>} (NAME relative to the document's directory); the digest is \"sha256:\" and the hex SHA-256 of the canonical form, the value a session declares. Reasons: invalid-json, invalid-config (not the schema: unknown members, wrong types, a model without a name, a prompt without exactly one of text and sha256, scope or parameters not an object), too-large (more than 65536 bytes).",
		"canonical":   cs,
		"configs":     ds,
	})
}

// loadConfig loads a configuration document with its files through
// log/config, as the Go client's LoadConfig does.
func loadConfig(doc string, files map[string]string) (*config.Document, error) {
	dir, err := os.MkdirTemp("", "agentlog-vectors-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		return nil, err
	}
	return config.Load(p)
}
