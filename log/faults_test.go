package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// TestCommitFailures: while the storage layer fails commits (an fsync or
// write error), appends fail with that error and nothing is acknowledged
// or applied; once it works again, appends continue at the next index,
// and after a reopen the log holds exactly the acknowledged entries under
// the same root.
func TestCommitFailures(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, nil)
	ctx := context.Background()
	if _, err := l.Append(ctx, admin, KindAction, recs(3, "before")); err != nil {
		t.Fatal(err)
	}
	for _, fault := range []error{syscall.EIO, syscall.ENOSPC, fmt.Errorf("fsync: %w", syscall.EIO)} {
		l.SetCommitFailure(func() error { return fault })
		_, err := l.Append(ctx, admin, KindAction, recs(2, "lost"))
		if !errors.Is(err, fault) {
			t.Fatalf("append under %v: %v", fault, err)
		}
		if l.Size() != 3 {
			t.Fatalf("size %d after a failed commit, want 3", l.Size())
		}
	}
	l.SetCommitFailure(nil)
	res, err := l.Append(ctx, admin, KindAction, recs(2, "after"))
	if err != nil || res[0].Index != 3 {
		t.Fatalf("append after the fault: %v %+v", err, res)
	}
	root := l.Tree().Root()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir, nil)
	defer l.Close()
	if l.Size() != 5 || !bytes.Equal(l.Tree().Root(), root) {
		t.Fatalf("reopened: size %d, root changed %v", l.Size(), !bytes.Equal(l.Tree().Root(), root))
	}
	for i := uint64(0); i < 5; i++ {
		e, err := l.Entry(i)
		if err != nil || bytes.Contains(e, []byte(`"lost"`)) {
			t.Fatalf("entry %d: %s %v", i, e, err)
		}
	}
}

// TestDiskFull: below the free space the database needs, appends fail with
// ErrDiskFull and write nothing, reads and proofs work, Disk says so; with
// space again appends resume by themselves.
func TestDiskFull(t *testing.T) {
	l := openTest(t, t.TempDir(), nil)
	defer l.Close()
	ctx := context.Background()
	if _, err := l.Append(ctx, admin, KindAction, recs(4, "a")); err != nil {
		t.Fatal(err)
	}
	need := l.Disk().NeedBytes
	if need < DefaultDiskReserve {
		t.Fatalf("need %d, below the reserve", need)
	}
	l.SetFreeSpace(need - 1)
	if _, err := l.Append(ctx, admin, KindAction, recs(1, "b")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("append on a full disk: %v", err)
	}
	if d := l.Disk(); !d.Full || d.FreeBytes != need-1 || l.Size() != 4 {
		t.Fatalf("disk %+v, size %d", d, l.Size())
	}
	if _, err := l.Entry(3); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Tree().InclusionProof(1, 4); err != nil {
		t.Fatal(err)
	}
	l.SetFreeSpace(need)
	if res, err := l.Append(ctx, admin, KindAction, recs(1, "c")); err != nil || res[0].Index != 4 {
		t.Fatalf("append with space again: %v", err)
	}
	if l.Disk().Full {
		t.Fatal("still full")
	}
}

// TestDiskNeed: the space needed covers what the newest value log file and
// the memtable logs may still grow by, beyond the reserve.
func TestDiskNeed(t *testing.T) {
	l, err := Open(Config{Dir: t.TempDir(), DiskReserve: 1 << 20, ValueLogFileSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	need := l.Disk().NeedBytes
	mem := l.db.Opts().MemTableSize
	if need <= 1<<20+8<<20 || need > 1<<20+8<<20+4*mem {
		t.Fatalf("need %d MiB, want the reserve, a value log file and the memtable logs", need>>20)
	}
}
