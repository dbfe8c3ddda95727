// Package fusefault is a file system for tests that misbehaves on
// request: a FUSE passthrough (go-fuse's loopback) over a real directory,
// through which a test runs a real process's data directory and injects
// faults into the operations the kernel sends it.
//
//   - Rules fail (EIO, ENOSPC, any errno) or delay the writes, fsyncs,
//     truncations, creations and renames of the files whose path matches
//     a pattern, as many times as asked or until cleared.
//   - A power cut (Cut, then Reboot) drops what the kernel wrote but no
//     fsync made durable: each file comes back with the content of its
//     last fsync, and the names created, renamed or removed come back as
//     they were at the last fsync of anything (as a journaling file
//     system commits its metadata: ext4, xfs). With tear, a random part
//     of the unsynced writes of each file survives too (at least a byte
//     of them, and at least a byte is lost), in the order they were made,
//     the last one cut at an arbitrary byte: a torn record.
//
// The kernel sends what a program writes through a shared memory map
// (Badger's memtables, value log and tables) to the file system when the
// pages are written back, at msync at the latest, and msync reaches it as
// an fsync; a power cut loses the dirty pages the kernel still holds, as
// it loses its page cache. Mounting needs root and /dev/fuse (go-fuse
// calls mount(2) itself, so fusermount is not needed).
//
// The process that mounts the layer serves it, so it must not map files
// of the mount itself: a page fault waiting on the server stops Go's
// garbage collector, and with it the server. Run what maps files (Badger,
// the agentlog binary) as another process, and cut its power by Cut, then
// SIGKILL, then Reboot.
//
// The layer is for tests: it lives in internal/ and only tests import it,
// so go-fuse is a dependency of the module (go.mod) but of no binary.
package fusefault

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Op names an operation the rules match.
type Op string

// The operations a rule may match.
const (
	Read     Op = "read"     // a read of a file (a page read into a memory map, too: a failure is SIGBUS there)
	Write    Op = "write"    // a write to a file (a page written back from a memory map, too)
	Fsync    Op = "fsync"    // fsync or fdatasync of a file (msync of a map reaches it as one)
	FsyncDir Op = "fsyncdir" // fsync of a directory
	Truncate Op = "truncate" // a change of a file's size (ftruncate, truncate, fallocate)
	Create   Op = "create"   // creating a file or directory
	Rename   Op = "rename"   // renaming (and replacing) a file
	Unlink   Op = "unlink"   // removing a file or directory
)

// Rule is one injected fault.
type Rule struct {
	Op Op
	// Path is a pattern (path.Match) matched against the file's path
	// relative to the mount, and against its base name: "db/*.sst" or
	// "*.sst". Empty matches every path.
	Path string
	// Err is the errno the operation fails with (syscall.EIO,
	// syscall.ENOSPC); 0 lets it run, after Delay.
	Err syscall.Errno
	// Delay is how long the operation waits before it runs or fails.
	Delay time.Duration
	// Times is how many operations the rule applies to; 0 is no limit.
	Times int
	// After is how many matching operations run normally before the
	// rule applies.
	After int
	// Every, if above 1, applies the rule to one matching operation in
	// Every (the first, then every Every-th), letting the others run.
	Every int
	// Chance, if above 0, applies the rule to each matching operation
	// with this probability (a flaky disk): over many operations, each
	// of a program's writers meets the fault.
	Chance float64

	seen, hit int
}

func (r *Rule) matches(op Op, rel string) bool {
	if r.Op != op {
		return false
	}
	if r.Path == "" {
		return true
	}
	if ok, _ := path.Match(r.Path, rel); ok {
		return true
	}
	ok, _ := path.Match(r.Path, path.Base(rel))
	return ok
}

// FS is a mounted fault-injecting file system.
type FS struct {
	// Dir is the mount point: where the process under test keeps its
	// files.
	Dir     string
	backing string
	server  *fuse.Server

	mu     sync.Mutex
	rules  []*Rule
	counts map[Op]int // operations seen, by kind
	faults map[Op]int // operations failed or delayed by a rule, by kind
	gen    *mountGen  // the current mount's

	// What a power cut leaves: durable is the file content of each inode
	// at its last fsync (a copy under shadow), names the namespace at the
	// last fsync of anything.
	shadow  string
	files   map[uint64]*fileState // by the backing inode number
	live    map[string]uint64     // relative path -> inode (0: a directory)
	durable map[string]uint64
	nsDirty bool
	torn    Torn // of the last Reboot
}

// Torn is what the last Reboot's tear did: how many files had unsynced
// writes, and how many of their bytes it kept and dropped.
type Torn struct {
	Files      int
	Kept, Lost int64
}

// LastTorn returns what the last Reboot's tear did.
func (f *FS) LastTorn() Torn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.torn
}

// mountGen is the power state of one mount: a node of an earlier mount
// (a process that kept a file open across a Reboot) never reaches the
// backing directory again.
type mountGen struct {
	frozen bool          // cut: every operation blocks, then fails
	dead   chan struct{} // closed by Reboot or Unmount: blocked operations fail
	closed bool
}

func (g *mountGen) kill() {
	if !g.closed {
		close(g.dead)
		g.closed = true
	}
}

// fileState is what the layer knows of one file's writes since its last
// fsync.
type fileState struct {
	synced  bool   // the shadow holds the content of a past fsync
	dirty   []span // ranges written since, sorted and disjoint
	resized bool   // the size changed since
	torn    []span // the writes since, in order (at most maxTornSpans), for Tear
	backing string // a path of the file in the backing directory
}

type span struct{ off, n int64 }

// maxTornSpans caps the writes a file remembers for Tear.
const maxTornSpans = 4096

// Unavailable says why FUSE cannot be mounted here ("" if it can).
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "mounting FUSE without fusermount needs root"
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "no /dev/fuse"
	}
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil || !strings.Contains(string(b), "\tfuse\n") {
		return "the kernel has no fuse file system"
	}
	return ""
}

// Start mounts a layer over a fresh directory for t and unmounts it when
// t ends. Where FUSE cannot be mounted (Unavailable), the test is skipped
// with the reason, unless AGENTLOG_REQUIRE_SERVICES=1 (set by .ci/run):
// then it fails, so CI never passes by skipping.
func Start(t testing.TB) (*FS, error) {
	t.Helper()
	if why := Unavailable(); why != "" {
		if os.Getenv("AGENTLOG_REQUIRE_SERVICES") == "1" {
			t.Fatalf("the FUSE fault layer cannot run: %s (CI runs as root on a machine with /dev/fuse)", why)
		}
		t.Skipf("the FUSE fault layer cannot run: %s (run as root on a machine with /dev/fuse; CI fails instead of skipping)", why)
	}
	base := t.TempDir()
	dirs := []string{"backing", "mnt", "shadow"}
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			return nil, err
		}
	}
	f, err := Mount(filepath.Join(base, "backing"), filepath.Join(base, "mnt"), filepath.Join(base, "shadow"))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := f.Unmount(30 * time.Second); err != nil {
			t.Errorf("unmounting the FUSE fault layer: %v", err)
		}
	})
	return f, nil
}

// Mount mounts a fault-injecting passthrough of the directory backing at
// mnt, which must exist; shadow is a directory the layer keeps the durable
// copies in (on any file system, outside backing).
func Mount(backing, mnt, shadow string) (*FS, error) {
	f := &FS{Dir: mnt, backing: backing, shadow: shadow, counts: map[Op]int{}, faults: map[Op]int{}}
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *FS) mount() error {
	f.files, f.live, f.durable = map[uint64]*fileState{}, map[string]uint64{}, map[string]uint64{}
	f.gen = &mountGen{dead: make(chan struct{})}
	if err := os.RemoveAll(f.shadow); err != nil {
		return err
	}
	if err := os.MkdirAll(f.shadow, 0o700); err != nil {
		return err
	}
	// What is in backing now is durable: the starting state.
	err := filepath.Walk(f.backing, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(f.backing, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			f.live[rel] = 0
			return nil
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("fusefault: %s is not a regular file or a directory", p)
		}
		ino := info.Sys().(*syscall.Stat_t).Ino
		f.live[rel] = ino
		if _, ok := f.files[ino]; ok {
			return nil
		}
		if err := copySparse(p, f.shadowOf(ino), -1); err != nil {
			return err
		}
		f.files[ino] = &fileState{synced: true, backing: p}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fusefault: reading %s: %w", f.backing, err)
	}
	f.durable = maps(f.live)
	root, err := fs.NewLoopbackRoot(f.backing)
	if err != nil {
		return err
	}
	lr := root.(*fs.LoopbackNode).RootData
	top := &node{LoopbackNode: fs.LoopbackNode{RootData: lr}, fs: f, gen: f.gen}
	lr.RootNode = top
	timeout := time.Duration(0)
	f.server, err = fs.Mount(f.Dir, top, &fs.Options{
		EntryTimeout: &timeout, AttrTimeout: &timeout, NegativeTimeout: &timeout,
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true,
			AllowOther:        true,
			FsName:            "fusefault",
			Name:              "fusefault",
			MaxWrite:          1 << 20,
			DisableXAttrs:     true,
		},
	})
	if err != nil {
		return fmt.Errorf("fusefault: mounting %s on %s: %w", f.backing, f.Dir, err)
	}
	closeOnExec()
	return nil
}

// closeOnExec marks the process's descriptors of /dev/fuse close-on-exec:
// go-fuse opens it without, and a child (the process under test) holding
// it would keep the connection, and whatever waits on it, alive after
// this process ends.
func closeOnExec() {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == "/dev/fuse" {
			if fd, err := strconv.Atoi(e.Name()); err == nil {
				syscall.CloseOnExec(fd)
			}
		}
	}
}

func maps(m map[string]uint64) map[string]uint64 {
	c := make(map[string]uint64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (f *FS) shadowOf(ino uint64) string { return filepath.Join(f.shadow, fmt.Sprint(ino)) }

// Inject adds rules; they apply in order, the first that matches an
// operation deciding it.
func (f *FS) Inject(rules ...Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rules {
		f.rules = append(f.rules, &r)
	}
}

// Clear removes every rule.
func (f *FS) Clear() {
	f.mu.Lock()
	f.rules = nil
	f.mu.Unlock()
}

// Count returns how many operations op the file system saw, and how
// many of them a rule failed or delayed.
func (f *FS) Count(op Op) (seen, faulted int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op], f.faults[op]
}

// Hits returns how many operations the rules for op and pattern (as
// given to Inject) failed or delayed.
func (f *FS) Hits(op Op, pattern string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.rules {
		if r.Op == op && r.Path == pattern {
			n += r.hit
		}
	}
	return n
}

// check runs before an operation of a node of mount g: it blocks while
// the power is cut, fails once g is gone, and applies the first matching
// rule.
func (f *FS) check(g *mountGen, op Op, rel string) syscall.Errno {
	f.mu.Lock()
	if g.frozen || g.closed {
		f.mu.Unlock()
		<-g.dead
		return syscall.EIO
	}
	f.counts[op]++
	var delay time.Duration
	var errno syscall.Errno
	for _, r := range f.rules {
		if !r.matches(op, rel) {
			continue
		}
		r.seen++
		if r.seen <= r.After || r.Times > 0 && r.hit >= r.Times || r.Every > 1 && (r.seen-r.After-1)%r.Every != 0 || r.Chance > 0 && rand.Float64() >= r.Chance {
			continue
		}
		r.hit++
		f.faults[op]++
		delay, errno = r.Delay, r.Err
		break
	}
	f.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-g.dead:
			return syscall.EIO
		}
	}
	return errno
}

// Cut cuts the power: from now on every operation blocks, as if the
// machine had stopped, until Reboot. Kill the process under test after
// Cut: it must not see an operation succeed once the power is off.
func (f *FS) Cut() {
	f.mu.Lock()
	f.gen.frozen = true
	f.mu.Unlock()
}

// Reboot follows Cut: blocked and later operations fail, the file system
// is unmounted (waiting for the processes using it to go, at most
// timeout), the backing directory is set back to what was durable (with
// tear, a random part of each file's unsynced writes survives, chosen by
// rnd), and the layer is mounted again there, without rules.
func (f *FS) Reboot(tear bool, rnd *rand.Rand, timeout time.Duration) error {
	f.mu.Lock()
	if !f.gen.frozen {
		f.mu.Unlock()
		return errors.New("fusefault: Reboot without Cut")
	}
	f.gen.kill()
	f.mu.Unlock()
	if err := f.unmount(timeout); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.restore(tear, rnd); err != nil {
		return err
	}
	f.rules = nil
	return f.mount()
}

// Unmount unmounts the file system, waiting at most timeout for the
// processes that use it to go.
func (f *FS) Unmount(timeout time.Duration) error {
	f.mu.Lock()
	f.gen.kill()
	f.mu.Unlock()
	return f.unmount(timeout)
}

func (f *FS) unmount(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f.server.Unmount()
		if err == nil {
			f.server.Wait()
			return nil
		}
		if time.Now().After(deadline) {
			// Leave nothing mounted behind the test.
			syscall.Unmount(f.Dir, syscall.MNT_DETACH)
			return fmt.Errorf("fusefault: unmounting %s: %w", f.Dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restore sets the backing directory to its durable state.
func (f *FS) restore(tear bool, rnd *rand.Rand) error {
	// Unsynced writes that survive a torn cut: read them from the live
	// files before those go.
	type piece struct {
		off  int64
		data []byte
	}
	survive := map[uint64][]piece{}
	f.torn = Torn{}
	if tear {
		for ino, st := range f.files {
			var total int64
			for _, s := range st.torn {
				total += s.n
			}
			if total == 0 {
				continue
			}
			// Torn: at least one byte of the unsynced writes survives and
			// at least one is lost, when there are two.
			keep := total
			if total > 1 {
				keep = 1 + rnd.Int64N(total-1)
			}
			f.torn.Files++
			f.torn.Kept += keep
			f.torn.Lost += total - keep
			src, err := os.Open(st.backing)
			if err != nil {
				continue // removed since: its writes went with it
			}
			for _, s := range st.torn {
				if keep == 0 {
					break
				}
				n := min(s.n, keep)
				b := make([]byte, n)
				m, _ := src.ReadAt(b, s.off)
				survive[ino] = append(survive[ino], piece{s.off, b[:m]})
				keep -= n
			}
			src.Close()
		}
	}
	ents, err := os.ReadDir(f.backing)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(f.backing, e.Name())); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(f.durable))
	for p := range f.durable {
		names = append(names, p)
	}
	slices.Sort(names) // parents before children
	made := map[uint64]string{}
	for _, p := range names {
		dst := filepath.Join(f.backing, filepath.FromSlash(p))
		ino := f.durable[p]
		if ino == 0 {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if first, ok := made[ino]; ok {
			if err := os.Link(first, dst); err != nil {
				return err
			}
			continue
		}
		made[ino] = dst
		st := f.files[ino]
		if st != nil && st.synced {
			if err := copySparse(f.shadowOf(ino), dst, -1); err != nil {
				return err
			}
		} else if err := os.WriteFile(dst, nil, 0o644); err != nil {
			// Named durably but never fsynced: empty, as ext4 leaves a
			// file whose data was never written back.
			return err
		}
		if ps := survive[ino]; len(ps) > 0 {
			out, err := os.OpenFile(dst, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			for _, pc := range ps {
				if _, err := out.WriteAt(pc.data, pc.off); err != nil {
					out.Close()
					return err
				}
			}
			if err := out.Close(); err != nil {
				return err
			}
		}
	}
	return nil
}

// copySparse copies src to dst (size bytes of it, or all if size < 0),
// keeping holes as holes.
func copySparse(src, dst string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if size < 0 {
		size = st.Size()
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if err := copyRanges(in, out, dataRanges(in, size)); err != nil {
		out.Close()
		return err
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// dataRanges lists the ranges of in below size that hold data (not
// holes).
func dataRanges(in *os.File, size int64) []span {
	var spans []span
	fd := int(in.Fd())
	for off := int64(0); off < size; {
		d, err := seek(fd, off, seekData)
		if err != nil || d >= size {
			break
		}
		h, err := seek(fd, d, seekHole)
		if err != nil || h > size {
			h = size
		}
		spans = append(spans, span{d, h - d})
		off = h
	}
	return spans
}

const (
	seekData = 3 // SEEK_DATA
	seekHole = 4 // SEEK_HOLE
)

func seek(fd int, off int64, whence int) (int64, error) {
	return syscall.Seek(fd, off, whence)
}

// copyRanges copies the ranges of in to the same offsets of out.
func copyRanges(in io.ReaderAt, out io.WriterAt, spans []span) error {
	buf := make([]byte, 1<<20)
	for _, s := range spans {
		for done := int64(0); done < s.n; {
			n := min(int64(len(buf)), s.n-done)
			m, err := in.ReadAt(buf[:n], s.off+done)
			if m > 0 {
				if _, werr := out.WriteAt(buf[:m], s.off+done); werr != nil {
					return werr
				}
			}
			if err == io.EOF || m == 0 {
				break // the file shrank since: the size decides
			}
			if err != nil {
				return err
			}
			done += int64(m)
		}
	}
	return nil
}
