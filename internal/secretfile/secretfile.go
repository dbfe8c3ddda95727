// Package secretfile reads secrets (keys, tokens, webhook secrets) from
// files that only their owner may read: a file others can read is refused
// with a sentence naming it and the chmod that fixes it.
package secretfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
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
