package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ErrDiskFull is returned for appends while the file system holding the
// database has less free space than the log needs to write safely. Nothing
// of such an append is written; appends resume by themselves once space is
// freed. The HTTP layer answers 507 with Retry-After.
var ErrDiskFull = errors.New("not enough free disk space for the database")

// DefaultDiskReserve is Config.DiskReserve's default.
const DefaultDiskReserve = 256 << 20

// DiskStatus is the free space the log sees and the space it needs.
type DiskStatus struct {
	FreeBytes int64 `json:"free_bytes"`
	NeedBytes int64 `json:"need_bytes"` // appends are refused while FreeBytes < NeedBytes
	Full      bool  `json:"full"`
}

// diskGuard keeps appends off a full disk. Badger writes its value log and
// memtable logs through memory-mapped files that grow into sparse space: a
// write into a page the file system cannot back kills the process with
// SIGBUS instead of returning an error. So the log refuses appends while
// the free space is below what those files may still grow by (the newest
// value log file up to its size, each memtable log up to twice the
// memtable size) plus a reserve for flushes and compactions.
type diskGuard struct {
	dir               string
	reserve           int64
	vlogSize, memSize int64

	need atomic.Int64
	free atomic.Int64
	full atomic.Bool

	// statfs, if set, replaces freeBytes (tests: export_test.go).
	statfs atomic.Pointer[func(dir string) (int64, error)]
}

func newDiskGuard(dir string, reserve, vlogSize, memSize int64) *diskGuard {
	g := &diskGuard{dir: dir, reserve: reserve, vlogSize: vlogSize, memSize: memSize}
	g.refresh()
	g.check()
	return g
}

// check reads the free space and fails with ErrDiskFull when it is below
// what the database needs. It is cheap (one statfs) and runs before every
// batch.
func (g *diskGuard) check() error {
	statfs := freeBytes
	if f := g.statfs.Load(); f != nil {
		statfs = *f
	}
	free, err := statfs(g.dir)
	if err != nil {
		// Not knowing is no reason to refuse writes; the write itself
		// will report a real problem.
		return nil
	}
	g.free.Store(free)
	need := g.need.Load()
	if free < need {
		g.full.Store(true)
		return fmt.Errorf("%w: %d MiB free in %s, appends need %d MiB", ErrDiskFull, free>>20, g.dir, need>>20)
	}
	g.full.Store(false)
	return nil
}

// refresh recomputes the space needed from the allocation of the
// database's growing files.
func (g *diskGuard) refresh() {
	need := g.reserve
	ents, err := os.ReadDir(g.dir)
	if err != nil {
		g.need.Store(need + g.vlogSize + 2*g.memSize)
		return
	}
	newest, newestID := "", -1
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".vlog"):
			if id, err := strconv.Atoi(strings.TrimSuffix(name, ".vlog")); err == nil && id > newestID {
				newest, newestID = name, id
			}
		case strings.HasSuffix(name, ".mem"):
			need += max(0, 2*g.memSize-allocated(filepath.Join(g.dir, name)))
		}
	}
	if newest != "" {
		need += max(0, g.vlogSize-allocated(filepath.Join(g.dir, newest)))
	} else {
		need += g.vlogSize
	}
	g.need.Store(need)
}

func (g *diskGuard) status() DiskStatus {
	return DiskStatus{FreeBytes: g.free.Load(), NeedBytes: g.need.Load(), Full: g.full.Load()}
}

// run refreshes the need and the free space every interval until stop.
func (g *diskGuard) run(every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			g.refresh()
			g.check()
		}
	}
}
