package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestCanonicalizeRFC8785 checks the examples of RFC 8785: section 3.2.2
// (serialization of primitives), section 3.2.3 (sorting of properties by
// UTF-16 code units) and the number samples of appendix B.
func TestCanonicalizeRFC8785(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"3.2.2", `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`, `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		{"3.2.3", `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`, "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		{"nested", `{"b": [ {"z":1, "a": 2} ], "a": {"y": true, "x": null}}`, `{"a":{"x":null,"y":true},"b":[{"a":2,"z":1}]}`},
	} {
		got, err := Canonicalize([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(got) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
	// Appendix B: IEEE 754 doubles and their canonical text. Each is given
	// to the canonicalizer with 17 significant digits in exponent form.
	for _, tc := range []struct{ bits, want string }{
		{"0000000000000000", "0"},
		{"8000000000000000", "0"},
		{"0000000000000001", "5e-324"},
		{"8000000000000001", "-5e-324"},
		{"7fefffffffffffff", "1.7976931348623157e+308"},
		{"ffefffffffffffff", "-1.7976931348623157e+308"},
		{"4340000000000000", "9007199254740992"},
		{"c340000000000000", "-9007199254740992"},
		{"4430000000000000", "295147905179352830000"},
		{"44b52d02c7e14af5", "9.999999999999997e+22"},
		{"44b52d02c7e14af6", "1e+23"},
		{"44b52d02c7e14af7", "1.0000000000000001e+23"},
		{"444b1ae4d6e2ef4e", "999999999999999700000"},
		{"444b1ae4d6e2ef4f", "999999999999999900000"},
		{"444b1ae4d6e2ef50", "1e+21"},
		{"3eb0c6f7a0b5ed8c", "9.999999999999997e-7"},
		{"3eb0c6f7a0b5ed8d", "0.000001"},
		{"41b3de4355555553", "333333333.3333332"},
		{"41b3de4355555554", "333333333.33333325"},
		{"41b3de4355555555", "333333333.3333333"},
		{"41b3de4355555556", "333333333.3333334"},
		{"41b3de4355555557", "333333333.33333343"},
		{"becbf647612f3696", "-0.0000033333333333333333"},
		{"43143ff3c1cb0959", "1424953923781206.2"},
	} {
		u, err := strconv.ParseUint(tc.bits, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		in := strconv.FormatFloat(math.Float64frombits(u), 'e', 16, 64)
		got, err := Canonicalize([]byte("[" + in + "]"))
		if err != nil {
			t.Fatalf("%s (%s): %v", tc.bits, in, err)
		}
		if string(got) != "["+tc.want+"]" {
			t.Errorf("%s (%s): got %s, want [%s]", tc.bits, in, got, tc.want)
		}
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `{"a":`, "\"\xff\"", `[1] [2]`} {
		if _, err := Canonicalize([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Canonicalize(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

const sample = `{
  "model": {"provider": "anthropic", "name": "claude-sonnet", "version": "4.5"},
  "prompts": {"system": {"sha256": "` + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" + `"}},
  "scope": {"tools": ["sql"], "resources": ["customers/*"]},
  "framework": {"name": "langgraph", "version": "0.2"},
  "parameters": {"temperature": 0.20, "max_tokens": 1024}
}`

// The same configuration with other key order, whitespace, escapes and
// number spellings.
const sampleReordered = `{"parameters":{"max_tokens":1.024e3,"temperature":2E-1},"framework":{"version":"0.2","name":"langgraph"},
"scope":{"resources":["customers/*"],"tools":["\u0073ql"]},"prompts":{"system":{"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
	"model":{"version":"4.5","name":"claude-sonnet","provider":"anthropic"}}`

func TestDigestIgnoresFormatting(t *testing.T) {
	a, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte(sampleReordered))
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != b.Digest || string(a.Canonical) != string(b.Canonical) {
		t.Fatalf("digests differ:\n%s %s\n%s %s", a.Digest, a.Canonical, b.Digest, b.Canonical)
	}
	h := sha256.Sum256(a.Canonical)
	if a.Digest != "sha256:"+hex.EncodeToString(h[:]) || !ValidDigest(a.Digest) {
		t.Fatalf("digest %s is not sha256: of the canonical form", a.Digest)
	}
	c, err := Parse([]byte(`{"model":{"name":"claude-sonnet","version":"4.6","provider":"anthropic"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Digest == a.Digest {
		t.Fatal("a different configuration has the same digest")
	}
}

func TestParseRefuses(t *testing.T) {
	for _, bad := range []string{
		`{}`,
		`{"model":{"name":""}}`,
		`{"model":{"name":"m"},"modle":{}}`,
		`{"model":{"name":"m","name":"n"}}`,
		`{"model":{"name":"m"},"prompts":{"s":{}}}`,
		`{"model":{"name":"m"},"prompts":{"s":{"text":"a","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}}`,
		`{"model":{"name":"m"},"prompts":{"s":{"sha256":"ABC"}}}`,
		`{"model":{"name":"m"},"prompts":{"s":{"file":"x.txt"}}}`,
		`{"model":{"name":"m"},"scope":[1]}`,
		`{"model":{"name":"m"},"parameters":3}`,
		`{"model":{"name":"m"},"framework":{"version":"1"}}`,
		`[]`,
	} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%s) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestLoadResolvesPromptFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "system.txt"), []byte("test"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `{"model":{"provider":"anthropic","name":"claude-sonnet","version":"4.5"},"prompts":{"system":{"file":"system.txt"}},
	"scope":{"tools":["sql"],"resources":["customers/*"]},"framework":{"name":"langgraph","version":"0.2"},"parameters":{"temperature":0.2,"max_tokens":1024}}`
	p := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Parse([]byte(sample)) // sha256("test") is the sample's prompt digest
	if d.Digest != want.Digest {
		t.Fatalf("Load digest %s, want %s (%s)", d.Digest, want.Digest, d.Canonical)
	}
	os.Remove(filepath.Join(dir, "system.txt"))
	if _, err := Load(p); err == nil {
		t.Fatal("Load with a missing prompt file succeeded")
	}
}

func TestDiff(t *testing.T) {
	a, _ := Parse([]byte(sample))
	b, _ := Parse([]byte(`{"model":{"provider":"anthropic","name":"claude-sonnet","version":"4.6"},"prompts":{"system":{"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},"scope":{"tools":["sql","http"],"resources":["customers/*"]},"framework":{"name":"langgraph","version":"0.2"},"parameters":{"temperature":0.2}}`))
	got, err := Diff(a.Canonical, b.Canonical)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Path: "model.version", Old: `"4.5"`, New: `"4.6"`},
		{Path: "parameters.max_tokens", Old: "1024"},
		{Path: "scope.tools[1]", New: `"http"`},
	}
	if len(got) != len(want) {
		t.Fatalf("Diff = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Diff[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	all, _ := Diff(nil, a.Canonical)
	if len(all) != 10 {
		t.Errorf("Diff(nil, sample) has %d changes, want 10: %+v", len(all), all)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(sampleReordered))
	f.Add([]byte(`{"model":{"name":"m"},"prompts":{"a":{"text":"\u20ac"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// The canonical form is a fixed point and parses to the same digest.
		d2, err := Parse(d.Canonical)
		if err != nil || d2.Digest != d.Digest || string(d2.Canonical) != string(d.Canonical) {
			t.Fatalf("canonical form %s does not round-trip: %v", d.Canonical, err)
		}
		if _, err := Diff(nil, d.Canonical); err != nil {
			t.Fatal(err)
		}
	})
}
