package sink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// fileSink appends JSON lines to a file, fsyncing each batch before Send
// returns. Past max_size_mib the file is renamed PATH.1 (PATH.1 to PATH.2,
// and so on; beyond max_files the oldest is removed) and a new PATH begun;
// a batch is never split across two files.
type fileSink struct {
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64
}

func openFile(s Sink) (*fileSink, error) {
	fs := &fileSink{path: s.Path, maxSize: int64(s.MaxSizeMiB) << 20, maxFiles: s.MaxFiles}
	if fs.maxSize == 0 {
		fs.maxSize = defaultSizeMiB << 20
	}
	if fs.maxFiles == 0 {
		fs.maxFiles = defaultMaxFiles
	}
	if err := fs.open(); err != nil {
		return nil, err
	}
	return fs, nil
}

func (fs *fileSink) open() error {
	f, err := os.OpenFile(fs.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("%s is not a regular file", fs.path)
	}
	size, err := wholeLines(f, fi.Size())
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", fs.path, err)
	}
	fs.f, fs.size = f, size
	return nil
}

// wholeLines cuts a partial last line, which a crash in the middle of a
// write leaves (its batch was not recorded as delivered, and is sent
// again), and returns the file's new size.
func wholeLines(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		n := min(int64(len(buf)), end)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end == size {
		return size, nil
	}
	if err := f.Truncate(end); err != nil {
		return 0, err
	}
	return end, f.Sync()
}

func (fs *fileSink) Send(_ context.Context, batch []Event) error {
	if fs.f == nil {
		if err := fs.open(); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	for _, e := range batch {
		buf.Write(e.JSON)
		buf.WriteByte('\n')
	}
	if fs.size > 0 && fs.size+int64(buf.Len()) > fs.maxSize {
		if err := fs.rotate(); err != nil {
			return fmt.Errorf("rotating %s: %w", fs.path, err)
		}
	}
	_, err := fs.f.Write(buf.Bytes())
	if err == nil {
		err = fs.f.Sync()
	}
	if err != nil {
		// Cut what was written of the batch, so that no partial line is
		// left before it is sent again; reopened on the next Send.
		fs.f.Truncate(fs.size)
		fs.f.Close()
		fs.f = nil
		return fmt.Errorf("writing %s: %w", fs.path, err)
	}
	fs.size += int64(buf.Len())
	return nil
}

// rotate renames PATH.k to PATH.k+1 (removing PATH.max_files), PATH to
// PATH.1, syncs the directory, and opens a new PATH.
func (fs *fileSink) rotate() error {
	if err := fs.f.Close(); err != nil {
		return err
	}
	fs.f = nil
	name := func(k int) string { return fs.path + "." + strconv.Itoa(k) }
	if err := os.Remove(name(fs.maxFiles)); err != nil && !os.IsNotExist(err) {
		return err
	}
	for k := fs.maxFiles - 1; k >= 1; k-- {
		if err := os.Rename(name(k), name(k+1)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if err := os.Rename(fs.path, name(1)); err != nil {
		return err
	}
	if err := fs.open(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(fs.path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (fs *fileSink) Close() error {
	if fs.f == nil {
		return nil
	}
	err := fs.f.Close()
	fs.f = nil
	return err
}

// stdoutSink writes JSON lines to the server's standard output; it is
// synced where the output is a file.
type stdoutSink struct {
	mu sync.Mutex
	w  io.Writer
}

func newStdout(w io.Writer) *stdoutSink {
	if w == nil {
		w = os.Stdout
	}
	return &stdoutSink{w: w}
}

func (s *stdoutSink) Send(_ context.Context, batch []Event) error {
	var buf bytes.Buffer
	for _, e := range batch {
		buf.Write(e.JSON)
		buf.WriteByte('\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing to standard output: %w", err)
	}
	if f, ok := s.w.(*os.File); ok {
		// Sync fails on a pipe or terminal, where there is nothing to sync.
		_ = f.Sync()
	}
	return nil
}

func (s *stdoutSink) Close() error { return nil }
