package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/log/config"
	"github.com/agentlog/agentlog/witness/policy"
)

// TestVectorsConfigs runs configs.json: the Go client's LoadConfig gives
// every vector's canonical form and digest, and refuses the invalid ones.
func TestVectorsConfigs(t *testing.T) {
	var f struct {
		Canonical []struct {
			Name, JSON, Canonical, Reason string
			JSONBase64                    string `json:"json_base64"`
			Valid                         bool
		}
		Configs []struct {
			Name, Document, Canonical, Digest, Reason string
			Files                                     map[string]string
			Valid                                     bool
		}
	}
	readVectors(t, "configs.json", &f)
	if len(f.Canonical) < 40 || len(f.Configs) < 20 {
		t.Fatalf("configs.json has %d canonical and %d config vectors", len(f.Canonical), len(f.Configs))
	}
	for _, v := range f.Canonical {
		in := []byte(v.JSON)
		if v.JSONBase64 != "" {
			in = unb64(t, v.JSONBase64)
		}
		got, err := config.Canonicalize(in)
		switch {
		case v.Valid && (err != nil || string(got) != v.Canonical):
			t.Errorf("%s: got %q, %v; want %q", v.Name, got, err, v.Canonical)
		case !v.Valid && err == nil:
			t.Errorf("%s: canonicalized, want %s", v.Name, v.Reason)
		}
	}
	for _, v := range f.Configs {
		dir := t.TempDir()
		for name, body := range v.Files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(dir, "config.json")
		if err := os.WriteFile(p, []byte(v.Document), 0o644); err != nil {
			t.Fatal(err)
		}
		canon, digest, err := LoadConfig(p)
		switch {
		case v.Valid && (err != nil || string(canon) != v.Canonical || digest != v.Digest):
			t.Errorf("%s: got %s %q, %v; want %s %q", v.Name, digest, canon, err, v.Digest, v.Canonical)
		case !v.Valid && err == nil:
			t.Errorf("%s: loaded, want %s", v.Name, v.Reason)
		}
	}
}

// TestVectorsWitnessKeys runs witness_keys.json: witnesses of each key
// type, a timestamp key in its 0x01 form, and witness keys to refuse.
func TestVectorsWitnessKeys(t *testing.T) {
	var f struct {
		checkpointVectors
		Vectors []struct {
			Name, Checkpoint, Policy, Root, Reason string
			TimeVKey                               string `json:"time_vkey"`
			Valid                                  bool
			Cosigners                              []string
		}
		Keys []struct {
			Name, Policy, Reason string
			Valid                bool
		}
	}
	readVectors(t, "witness_keys.json", &f)
	for _, v := range f.Vectors {
		cv := f.checkpointVectors
		if v.TimeVKey != "" {
			cv.TimeVKey = v.TimeVKey
		}
		cp, cosigners, err := cv.open(t, []byte(v.Checkpoint), true, v.Policy)
		switch {
		case !v.Valid && err == nil:
			t.Errorf("%s: accepted, want %s", v.Name, v.Reason)
		case !v.Valid && (v.Reason == "quorum") != errors.Is(err, policy.ErrQuorum):
			t.Errorf("%s: %v, want %s", v.Name, err, v.Reason)
		case v.Valid && err != nil:
			t.Errorf("%s: %v", v.Name, err)
		case v.Valid:
			slicesSort(cosigners)
			if cp.Time.Unix() != vectorTime || strings.Join(cosigners, ",") != strings.Join(v.Cosigners, ",") {
				t.Errorf("%s: time %v cosigners %v, want %v", v.Name, cp.Time, cosigners, v.Cosigners)
			}
		}
	}
	for _, v := range f.Keys {
		if _, err := policy.Parse([]byte(v.Policy)); (err == nil) != v.Valid {
			t.Errorf("%s: policy.Parse: %v, want valid %v", v.Name, err, v.Valid)
		}
	}
}

// vectorTime is the POSIX time of the vectors' timestamps.
const vectorTime = 1795860000
