package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cosig "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "example.com/agentlog"

func TestLoadOrCreateKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k, created, err := LoadOrCreateKeys(dir, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false on first start")
	}
	for name, mode := range map[string]os.FileMode{LogKeyFile: 0o600, TimeKeyFile: 0o600, LogPubFile: 0o644, TimePubFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %04o, want %04o", name, fi.Mode().Perm(), mode)
		}
	}
	if got := readFile(t, dir, LogPubFile); got != k.LogVKey+"\n" {
		t.Errorf("log.pub = %q, want %q", got, k.LogVKey+"\n")
	}
	if got := readFile(t, dir, TimePubFile); got != k.TimeVKey+"\n" {
		t.Errorf("time.pub = %q, want %q", got, k.TimeVKey+"\n")
	}
	if !strings.HasPrefix(readFile(t, dir, LogKeyFile), "PRIVATE+KEY+"+testOrigin+"+") {
		t.Errorf("log.key does not hold a note private key named %s", testOrigin)
	}
	if k.TimeSigner.Name() != testOrigin+TimeKeySuffix {
		t.Errorf("timestamp key name %q", k.TimeSigner.Name())
	}
	// The verifier keys parse with the reference implementations.
	if _, err := note.NewVerifier(k.LogVKey); err != nil {
		t.Errorf("x/mod note rejects log.pub: %v", err)
	}
	tv, err := cosig.NewVerifierForCosignatureV1(k.TimeVKey)
	if err != nil {
		t.Fatalf("formats rejects time.pub: %v", err)
	}
	if tv.KeyHash() != k.TimeSigner.KeyHash() {
		t.Errorf("key ID %08x from formats, %08x from TimeSigner", tv.KeyHash(), k.TimeSigner.KeyHash())
	}

	k2, created, err := LoadOrCreateKeys(dir, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("created = true on second start")
	}
	if k2.LogVKey != k.LogVKey || k2.TimeVKey != k.TimeVKey {
		t.Error("reloaded keys differ")
	}

	// A missing public file is derived again from its key.
	os.Remove(filepath.Join(dir, TimePubFile))
	if _, _, err := LoadOrCreateKeys(dir, testOrigin); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dir, TimePubFile); got != k.TimeVKey+"\n" {
		t.Errorf("re-derived time.pub = %q", got)
	}
}

func TestLoadOrCreateKeysRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(dir string)
		origin string
		want   string // in the error
	}{
		{"log.key world readable", func(dir string) { os.Chmod(filepath.Join(dir, LogKeyFile), 0o644) }, testOrigin, LogKeyFile},
		{"time.key group readable", func(dir string) { os.Chmod(filepath.Join(dir, TimeKeyFile), 0o640) }, testOrigin, TimeKeyFile},
		{"other origin", func(string) {}, "example.com/other", LogKeyFile},
		{"log.pub without log.key", func(dir string) { os.Remove(filepath.Join(dir, LogKeyFile)) }, testOrigin, LogKeyFile},
		{"time.pub without time.key", func(dir string) { os.Remove(filepath.Join(dir, TimeKeyFile)) }, testOrigin, TimeKeyFile},
		{"mismatched log.pub", func(dir string) {
			_, vkey, _ := note.GenerateKey(nil, testOrigin)
			os.WriteFile(filepath.Join(dir, LogPubFile), []byte(vkey+"\n"), 0o644)
		}, testOrigin, LogPubFile},
		{"garbage log.key", func(dir string) {
			os.WriteFile(filepath.Join(dir, LogKeyFile), []byte("hello\n"), 0o600)
		}, testOrigin, LogKeyFile},
		{"bad origin", func(string) {}, "has space", "origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := LoadOrCreateKeys(dir, testOrigin); err != nil {
				t.Fatal(err)
			}
			tc.mutate(dir)
			_, _, err := LoadOrCreateKeys(dir, tc.origin)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

func TestTimeKeyInteropWithFormats(t *testing.T) {
	skey, vkey, err := GenerateTimeKey(nil, "example.com/agentlog/time")
	if err != nil {
		t.Fatal(err)
	}
	// formats' signer accepts our private key, and our verifier key checks its
	// signatures.
	theirs, err := cosig.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatalf("formats rejects the private key: %v", err)
	}
	ours, err := NewTimeSigner(skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if theirs.KeyHash() != ours.KeyHash() || ours.VerifierKey() != vkey {
		t.Fatalf("key IDs differ: formats %08x, ours %08x", theirs.KeyHash(), ours.KeyHash())
	}
	v, err := cosig.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("example.com/agentlog\n1\nbm90IGEgcmVhbCByb290IGhhc2ggYnV0IDMyIGJ5dGU=\n")
	sig, err := theirs.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Verify(body, sig) {
		t.Error("formats' signature does not verify")
	}
	sig, err = ours.At(time.Unix(1700000000, 0)).Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Verify(body, sig) {
		t.Error("our signature does not verify with formats")
	}

	// A key ID that does not match the key is refused.
	bad := strings.Replace(skey, "+"+strings.Split(skey, "+")[3]+"+", "+00000000+", 1)
	if _, err := NewTimeSigner(bad, nil); err == nil {
		t.Error("accepted a private key with a wrong key ID")
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
