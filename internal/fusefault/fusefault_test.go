package fusefault

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// start mounts a layer over a fresh directory, skipping the test where
// FUSE cannot be mounted unless AGENTLOG_REQUIRE_SERVICES is set (CI).
func start(t *testing.T) *FS {
	t.Helper()
	f, err := Start(t)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func write(t *testing.T, p string, data []byte, off int64, sync bool) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, d string) {
	t.Helper()
	f, err := os.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestPowerCut: after a cut, each file holds what its last fsync made
// durable; a file never fsynced whose name was committed is empty; a name
// created after the last fsync of anything is gone; a rename committed
// by a directory fsync holds; with Tear, each file holds its synced
// content followed by a prefix of its unsynced writes.
func TestPowerCut(t *testing.T) {
	f := start(t)
	d := f.Dir
	write(t, filepath.Join(d, "a"), []byte("synced"), 0, true)
	write(t, filepath.Join(d, "a"), []byte("-lost"), 6, false)
	write(t, filepath.Join(d, "empty"), []byte("never synced"), 0, false)
	write(t, filepath.Join(d, "tmp"), []byte("renamed"), 0, true)
	if err := os.Rename(filepath.Join(d, "tmp"), filepath.Join(d, "b")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, d)
	// A file mapped shared and written through the map, by another
	// process (this one serves the file system: see TestBadgerChild):
	// msync reaches the layer as writes and an fsync.
	m := filepath.Join(d, "mapped")
	child := exec.Command(os.Args[0], "-test.run=^TestMapChild$", "-test.v=false")
	child.Env = append(os.Environ(), "FUSEFAULT_MAP_FILE="+m)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "mapped\n" {
		child.Process.Kill()
		child.Wait()
		t.Fatalf("the mapping child said %q", line)
	}
	// Created after the last fsync of anything: not durable.
	write(t, filepath.Join(d, "late"), []byte("late"), 0, false)
	if _, faulted := f.Count(Fsync); faulted != 0 {
		t.Fatal("faults without rules")
	}
	f.Cut()
	child.Process.Kill()
	if err := f.Reboot(false, nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	for name, want := range map[string]string{"a": "synced", "empty": "", "b": "renamed"} {
		b, err := os.ReadFile(filepath.Join(d, name))
		if err != nil || string(b) != want {
			t.Fatalf("%s after the cut: %q %v, want %q", name, b, err, want)
		}
	}
	b, err := os.ReadFile(m)
	if err != nil || len(b) != 8192 || !bytes.HasPrefix(b, []byte("through the map")) || !bytes.Equal(b[4096:4096+13], make([]byte, 13)) {
		t.Fatalf("mapped file after the cut: %d bytes %q..., %v", len(b), b[:min(len(b), 20)], err)
	}
	for _, name := range []string{"late", "tmp"} {
		if _, err := os.Stat(filepath.Join(d, name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s after the cut: %v, want it gone", name, err)
		}
	}

	// Torn: a prefix of the unsynced appends survives, cut anywhere.
	sizes := map[int]bool{}
	for i := range 20 {
		p := filepath.Join(d, "log")
		write(t, p, []byte("head"), 0, true)
		for j := range 4 {
			write(t, p, []byte(fmt.Sprintf("rec%d", j)), int64(4+4*j), false)
		}
		f.Cut()
		if err := f.Reboot(true, rand.New(rand.NewPCG(uint64(i), 1)), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		full := "headrec0rec1rec2rec3"
		if err != nil || len(b) < 4 || string(b) != full[:len(b)] {
			t.Fatalf("torn file: %q %v, want a prefix of %q from %q on", b, err, full, "head")
		}
		sizes[len(b)] = true
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		syncDir(t, d)
	}
	if len(sizes) < 4 {
		t.Fatalf("torn cuts left only sizes %v", sizes)
	}
}

// TestMapChild is the process TestPowerCut has map a file: it writes a
// page through the map and msyncs it, writes another page, and waits.
func TestMapChild(t *testing.T) {
	p := os.Getenv("FUSEFAULT_MAP_FILE")
	if p == "" {
		t.Skip("run by TestPowerCut")
	}
	mf, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := mf.Truncate(8192); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(mf.Fd()), 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	copy(mem, "through the map")
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	copy(mem[4096:], "unsynced page")
	fmt.Println("mapped")
	select {}
}

// TestRules: a rule fails the operations it matches, as many times as
// asked, after the ones it lets through, and is counted; others run.
func TestRules(t *testing.T) {
	f := start(t)
	p := filepath.Join(f.Dir, "x.sst")
	f.Inject(Rule{Op: Fsync, Path: "*.sst", Err: syscall.EIO, After: 1, Times: 2}, Rule{Op: Write, Path: "full", Err: syscall.ENOSPC})
	fh, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var errs []error
	for range 4 {
		errs = append(errs, fh.Sync())
	}
	if errs[0] != nil || !errors.Is(errs[1], syscall.EIO) || !errors.Is(errs[2], syscall.EIO) || errs[3] != nil {
		t.Fatalf("fsyncs: %v, want nil, EIO, EIO, nil", errs)
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "full"), []byte("x"), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write to full: %v", err)
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "other"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := f.Hits(Fsync, "*.sst"); n != 2 {
		t.Fatalf("%d hits, want 2", n)
	}
	f.Clear()
	if err := os.WriteFile(filepath.Join(f.Dir, "full"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.Inject(Rule{Op: Fsync, Path: "slow", Delay: 300 * time.Millisecond})
	start := time.Now()
	write(t, filepath.Join(f.Dir, "slow"), []byte("x"), 0, true)
	if time.Since(start) < 300*time.Millisecond {
		t.Fatal("the delay did not delay")
	}
}

func badgerOpts(dir string) badger.Options {
	return badger.DefaultOptions(dir).WithSyncWrites(true).WithLogger(nil).
		WithValueLogFileSize(1 << 20).WithMemTableSize(256 << 10).WithBaseTableSize(64 << 10).
		WithNumLevelZeroTables(1).WithNumLevelZeroTablesStall(2).WithValueThreshold(256)
}

// badgerValue is key i's value: in the LSM tree for even i, in the value
// log for odd i (the threshold is 256 bytes).
func badgerValue(i int) []byte { return bytes.Repeat([]byte{'a' + byte(i%26)}, 200+100*(i%2)) }

// TestBadgerChild is the process TestBadger runs on the layer (the test
// process serves the file system, so it must not map files of it: a page
// fault waiting on the server would stop the garbage collector, and with
// it the server). With FUSEFAULT_BADGER_CHECK=N it checks that keys 0 to
// N-1 hold their values and prints "checked"; then, or without it, it
// commits keys N, N+1, ... and prints each index once committed.
func TestBadgerChild(t *testing.T) {
	dir := os.Getenv("FUSEFAULT_BADGER_DIR")
	if dir == "" {
		t.Skip("run by TestBadger")
	}
	db, err := badger.Open(badgerOpts(dir))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(os.Getenv("FUSEFAULT_BADGER_CHECK"))
	err = db.View(func(txn *badger.Txn) error {
		for i := range n {
			it, err := txn.Get(fmt.Appendf(nil, "k%06d", i))
			if err != nil {
				return fmt.Errorf("committed key %d of %d: %w", i, n, err)
			}
			if err := it.Value(func(v []byte) error {
				if !bytes.Equal(v, badgerValue(i)) {
					return fmt.Errorf("key %d: wrong value", i)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("checked")
	for i := n; ; i++ {
		if err := db.Update(func(txn *badger.Txn) error {
			return txn.Set(fmt.Appendf(nil, "k%06d", i), badgerValue(i))
		}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("%d\n", i)
	}
}

// TestBadger: Badger (memory-mapped memtables, value log and tables) runs
// on the layer with SyncWrites, through flushes and compactions, and
// every key it committed survives power cuts that kill it mid-write, with
// torn tails, round after round.
// startBadgerChild runs TestBadgerChild on the database in dir, checking
// keys below check first; it returns the child, its stdout (a line per
// acknowledged key, "checked" once the check passed) and its stderr.
func startBadgerChild(t *testing.T, dir string, check int) (*exec.Cmd, io.Reader, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBadgerChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), "FUSEFAULT_BADGER_DIR="+dir, fmt.Sprintf("FUSEFAULT_BADGER_CHECK=%d", check))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out, stderr
}

func TestBadger(t *testing.T) {
	f := start(t)
	dir := filepath.Join(f.Dir, "db")
	acked := -1
	for round := range 3 {
		cmd, out, stderr := startBadgerChild(t, dir, acked+1)
		rnd := rand.New(rand.NewPCG(uint64(round), 11))
		until := acked + 1500 + rnd.IntN(1500)
		checked := false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "checked" {
				checked = true
			}
			n, err := strconv.Atoi(sc.Text())
			if err != nil {
				continue
			}
			acked = n
			if n >= until {
				break
			}
		}
		if !checked || acked < until {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: the child stopped at key %d (checked %v):\n%s", round, acked, checked, stderr.Bytes())
		}
		f.Cut()
		cmd.Process.Kill()
		if err := f.Reboot(round%2 == 1, rnd, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if round == 0 {
			if sst, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(sst) == 0 {
				t.Fatal("no tables were written")
			}
		}
	}
	cmd, out, stderr := startBadgerChild(t, dir, acked+1)
	line, _ := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Kill()
	cmd.Wait()
	if line != "checked\n" {
		t.Fatalf("after the last cut: %q\n%s", line, stderr.Bytes())
	}
}
