package secretfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if s, err := Read(write("ok", " secret\n", 0o600)); err != nil || s != "secret" {
		t.Fatalf("Read = %q, %v", s, err)
	}
	if _, err := Read(write("loose", "secret", 0o644)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a file others can read: %v", err)
	}
	if _, err := Read(write("empty", " \n", 0o600)); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("an empty file: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing file: %v", err)
	}
}

func TestCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.key")
	entries := func() []string {
		des, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		return names
	}

	// Aborted (the server refused): nothing is left behind.
	p, err := Create(path, []byte("key "))
	if err != nil {
		t.Fatal(err)
	}
	p.Abort()
	if n := entries(); len(n) != 0 {
		t.Fatalf("an aborted secret left %v", n)
	}

	// Committed: the whole content, mode 0600, and readable by Read.
	if p, err = Create(path, []byte("key ")); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit([]byte("material\n")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	if s, err := Read(path); err != nil || s != "key material" {
		t.Errorf("Read = %q, %v", s, err)
	}
	if n := entries(); len(n) != 1 {
		t.Errorf("after Commit the directory holds %v", n)
	}

	// An existing file is never overwritten, up front or at Commit.
	if _, err := Create(path, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Create over an existing file: %v", err)
	}
	other := filepath.Join(dir, "late")
	if p, err = Create(other, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = p.Commit(nil)
	if err == nil || !strings.Contains(err.Error(), p.TempPath()) {
		t.Errorf("Commit over a file created meanwhile: %v (want an error naming %s)", err, p.TempPath())
	}
	if b, _ := os.ReadFile(other); string(b) != "theirs" {
		t.Errorf("Commit replaced a file created meanwhile: %q", b)
	}
	if b, _ := os.ReadFile(p.TempPath()); string(b) != "mine" {
		t.Errorf("the secret is not kept in %s: %q", p.TempPath(), b)
	}
}

// TestAbortAfterCommit checks that a deferred Abort keeps a committed
// file, and the temporary file of a Commit that failed.
func TestAbortAfterCommit(t *testing.T) {
	dir := t.TempDir()
	p, err := Create(filepath.Join(dir, "a"), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(nil); err != nil {
		t.Fatal(err)
	}
	p.Abort()
	if _, err := os.Stat(filepath.Join(dir, "a")); err != nil {
		t.Errorf("Abort after Commit removed the file: %v", err)
	}
	var none *Pending
	none.Abort() // no --out: nothing to do
}
