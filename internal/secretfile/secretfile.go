// Package secretfile reads secrets (keys, tokens, webhook secrets) from
// files that only their owner may read: a file others can read is refused
// with a sentence naming it and the chmod that fixes it.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// MaxSize caps what Read reads of a secret file.
const MaxSize = 64 << 10

// Check returns an error if the file at path, described by fi, may be read
// by others than its owner.
func Check(path string, fi fs.FileInfo) error {
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o, so others may read the secret it holds; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return nil
}

// Read returns the trimmed contents of the secret file at path. It refuses
// a file others may read and an empty one.
func Read(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if err := Check(path, fi); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// Pending is a secret file being created: its content is durable in a
// hidden temporary file beside path (mode 0600) until [Pending.Commit]
// links it to path or [Pending.Abort] removes it. A command that writes a
// secret the server must first accept (a new agent key, a token) creates it
// with [Create] before asking, and commits only once the server said yes: a
// refused request leaves no file, and a file that exists is never
// overwritten.
type Pending struct {
	path string
	tmp  *os.File
	done bool // Commit was called: Abort keeps the file
}

// Create checks that path does not exist and that its directory is
// writable, and writes data (if any) to a temporary 0600 file beside it,
// fsynced. More data may be added with Commit.
func Create(path string, data []byte) (*Pending, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%s already exists; refusing to overwrite a secret (remove it or choose another file)", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".pending*")
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	p := &Pending{path: path, tmp: tmp}
	if err := tmp.Chmod(0o600); err != nil {
		p.Abort()
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	if len(data) > 0 {
		if _, err := tmp.Write(data); err != nil {
			p.Abort()
			return nil, fmt.Errorf("writing %s: %w", path, err)
		}
		if err := tmp.Sync(); err != nil {
			p.Abort()
			return nil, fmt.Errorf("syncing %s: %w", path, err)
		}
	}
	return p, nil
}

// TempPath is where the content waits until Commit: the place to recover a
// secret from if the process dies in between.
func (p *Pending) TempPath() string { return p.tmp.Name() }

// Commit appends more (which may be empty), fsyncs, and links the file to
// its path, failing if something appeared there meanwhile (the temporary
// file is then kept and named in the error).
func (p *Pending) Commit(more []byte) error {
	p.done = true
	tmp := p.tmp.Name()
	if _, err := p.tmp.Write(more); err != nil {
		p.tmp.Close()
		return fmt.Errorf("writing %s (the secret is in %s): %w", p.path, tmp, err)
	}
	if err := p.tmp.Sync(); err != nil {
		p.tmp.Close()
		return fmt.Errorf("syncing %s (the secret is in %s): %w", p.path, tmp, err)
	}
	if err := p.tmp.Close(); err != nil {
		return fmt.Errorf("writing %s (the secret is in %s): %w", p.path, tmp, err)
	}
	if err := os.Link(tmp, p.path); err != nil {
		return fmt.Errorf("creating %s (the secret is in %s): %w", p.path, tmp, err)
	}
	os.Remove(tmp)
	if d, err := os.Open(filepath.Dir(p.path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("syncing the directory of %s: %w", p.path, err)
		}
	}
	return nil
}

// Abort removes the temporary file: nothing is left behind. It does
// nothing on a nil Pending or after Commit (which keeps the temporary file
// when it fails), so "defer p.Abort()" is always right.
func (p *Pending) Abort() {
	if p == nil || p.done {
		return
	}
	p.done = true
	p.tmp.Close()
	os.Remove(p.tmp.Name())
}
