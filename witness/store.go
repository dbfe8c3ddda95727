package witness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/agentlog/agentlog/internal/atomicfile"
	"github.com/agentlog/agentlog/witness/policy"
)

// A Store keeps the latest cosigned checkpoint of each log.
//
// The [Witness] serializes Load and Store calls for the same origin, so a
// Store needs no compare-and-swap of its own, but it must be durable: once
// Store returns nil, a Load after a crash or power loss returns that
// checkpoint (never an older one), because the witness answers with a
// cosignature right after. A Store must be the only writer of its state:
// two processes sharing one would break the compare-and-swap.
type Store interface {
	// Load returns the checkpoint last stored for origin, or nil and no
	// error if there is none.
	Load(origin string) ([]byte, error)
	// Store durably replaces the checkpoint of origin.
	Store(origin string, signed []byte) error
}

// FileStore is a [Store] keeping one file per log in a directory, named by
// the hex SHA-256 of the origin. Each Store writes a temporary file, fsyncs
// it, renames it over the old one and fsyncs the directory, so after a
// crash the file holds either the previous or the new checkpoint, and the
// new one once Store has returned. A file per log keeps a write small and
// independent of other logs; a witness serves few logs at a low rate, so a
// database would add nothing.
//
// OpenFileStore takes an exclusive lock (flock) on the directory, so a
// second witness process cannot use it at the same time.
type FileStore struct {
	dir  string
	lock *os.File

	mu    sync.Mutex
	cache map[string][]byte
}

// OpenFileStore opens (creating it if needed, mode 0700) the state directory
// dir.
func OpenFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the witness state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the state lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is in use by another witness process: %w", dir, err)
	}
	// A crash in the middle of a Store leaves its temporary file behind;
	// the state file itself is intact.
	if tmps, err := filepath.Glob(filepath.Join(dir, ".*.tmp*")); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	return &FileStore{dir: dir, lock: f, cache: map[string][]byte{}}, nil
}

// Close releases the directory lock.
func (s *FileStore) Close() error { return s.lock.Close() }

func (s *FileStore) path(origin string) string {
	return filepath.Join(s.dir, policy.OriginHash(origin))
}

// Load implements [Store].
func (s *FileStore) Load(origin string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.cache[origin]; ok {
		return b, nil
	}
	b, err := os.ReadFile(s.path(origin))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.cache[origin] = b
	return b, nil
}

// Store implements [Store].
func (s *FileStore) Store(origin string, signed []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := atomicfile.Write(s.path(origin), signed, 0o644); err != nil {
		delete(s.cache, origin) // the file may hold either version
		return err
	}
	s.cache[origin] = append([]byte(nil), signed...)
	return nil
}

// MemStore is a [Store] in memory, for tests and tools.
type MemStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

// Load implements [Store].
func (s *MemStore) Load(origin string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[origin], nil
}

// Store implements [Store].
func (s *MemStore) Store(origin string, signed []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[origin] = append([]byte(nil), signed...)
	return nil
}
