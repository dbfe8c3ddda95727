package witness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/internal/atomicfile"
	"github.com/agentlog/agentlog/internal/secretfile"
)

// Names of the witness key files in its data directory.
const (
	KeyFile = "witness.key" // cosignature v1 private key, mode 0600
	PubFile = "witness.pub" // cosignature v1 verifier key (type 0x04), one line
)

// LoadOrCreateKey loads the witness's cosignature v1 key from dir, or on
// first start generates one named name and writes [KeyFile] (mode 0600) and
// [PubFile]. If name is not empty it must be the existing key's name. The
// returned signer takes its time from now (normally clock.Clock.Now (package checkpoint/clock)).
// It refuses a key file that others may read, and a public file without its
// key (a new key would silently change the witness's identity).
func LoadOrCreateKey(dir, name string, now func() time.Time) (s *checkpoint.TimeSigner, created bool, err error) {
	keyPath, pubPath := filepath.Join(dir, KeyFile), filepath.Join(dir, PubFile)
	b, err := os.ReadFile(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(pubPath); err == nil {
			return nil, false, fmt.Errorf("%s exists but %s is missing; restore the key, or remove %s to start a new witness identity", pubPath, keyPath, pubPath)
		}
		if name == "" {
			return nil, false, errors.New("a new witness needs a name (--name), for example witness.example.com/w1")
		}
		skey, vkey, err := checkpoint.GenerateTimeKey(nil, name)
		if err != nil {
			return nil, false, err
		}
		// The directory only now: a bad name leaves nothing behind.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, false, fmt.Errorf("creating %s: %w", dir, err)
		}
		if err := atomicfile.Write(keyPath, []byte(skey+"\n"), 0o600); err != nil {
			return nil, false, err
		}
		if err := atomicfile.Write(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, false, err
		}
		s, err := checkpoint.NewTimeSigner(skey, now)
		return s, true, err
	case err != nil:
		return nil, false, err
	}
	if fi, err := os.Stat(keyPath); err == nil {
		if err := secretfile.Check(keyPath, fi); err != nil {
			return nil, false, err
		}
	}
	s, err = checkpoint.NewTimeSigner(strings.TrimSpace(string(b)), now)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", keyPath, err)
	}
	if name != "" && s.Name() != name {
		return nil, false, fmt.Errorf("%s holds the key of witness %q, not %q", keyPath, s.Name(), name)
	}
	pub, err := os.ReadFile(pubPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		err = atomicfile.Write(pubPath, []byte(s.VerifierKey()+"\n"), 0o644)
	case err == nil && strings.TrimSpace(string(pub)) != s.VerifierKey():
		err = fmt.Errorf("%s does not match %s (expected %s)", pubPath, keyPath, s.VerifierKey())
	}
	return s, false, err
}
