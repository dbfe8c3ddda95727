package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/fusefault"
)

// onFUSE runs the fault suite's binary (small database tables, so that
// it flushes and compacts within seconds) with its data directory on the
// FUSE fault layer (internal/fusefault).
func onFUSE(t *testing.T, flags ...string) (*fusefault.FS, *injected) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault-injection tests build and run the binary")
	}
	f, err := fusefault.Start(t)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AGENTLOG_FAULTINJECT_SMALL_TABLES", "1")
	in := startInjectedAt(t, filepath.Join(f.Dir, "data"), flags...)
	t.Cleanup(func() { in.srv.kill() })
	return f, in
}

// load appends batches of n records from one client until stop is
// closed, and returns the statuses it got (each append a 200, recorded as
// acknowledged, or another status, which is checked by the caller).
func (in *injected) load(n int, stop <-chan struct{}) <-chan map[int]int {
	return in.loadWith(n, stop, false)
}

// loadUntilCut is load for a server that dies under it: an append that
// got no answer is not acknowledged (status 0).
func (in *injected) loadUntilCut(n int, stop <-chan struct{}) <-chan map[int]int {
	return in.loadWith(n, stop, true)
}

func (in *injected) loadWith(n int, stop <-chan struct{}, mayDie bool) <-chan map[int]int {
	done := make(chan map[int]int, 1)
	go func() {
		codes := map[int]int{}
		defer func() { done <- codes }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !mayDie {
				code, _, _ := in.post(n, "fault.kept")
				codes[code]++
				continue
			}
			code, _, _, err := in.tryPost(n, "fault.kept")
			if err != nil {
				code = 0
				select {
				case <-stop:
				case <-time.After(10 * time.Millisecond):
				}
			}
			codes[code]++
		}
	}()
	return done
}

// fillTables appends until the database has written at least n tables.
func (in *injected) fillTables(n int) {
	in.t.Helper()
	for range 2000 {
		if code, _, b := in.post(50, "fault.kept"); code != 200 {
			in.t.Fatalf("append: %d %s", code, b)
		}
		if m, _ := filepath.Glob(filepath.Join(in.data, "db", "*.sst")); len(m) >= n {
			return
		}
	}
	in.t.Fatalf("the database wrote fewer than %d tables", n)
}

// idle waits until the database has created no file for a second with
// no load: no flush or compaction is under way.
func idle(t *testing.T, f *fusefault.FS) {
	t.Helper()
	last, since := -1, time.Now()
	waitFor(t, "the database to be idle", func() bool {
		n, _ := f.Count(fusefault.Create)
		if n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) > time.Second
	})
}

// TestFaultFUSEFlush: the database cannot write its tables (every fsync
// of an .sst file, which reaches the file system as the msync of a
// memory-mapped table, fails with EIO), so it cannot flush its memtables,
// under load, with --commit-wait 2s. What must hold: the server keeps
// running (no SIGBUS, no exit); Badger's error is logged (ERROR "badger:
// error flushing memtable to disk ... retrying"), and /healthz is degraded
// and says that the background writes fail, with the error; once the
// memtables are full the commit under way waits (/healthz then also says
// the storage is slow), its append waits with it, and new appends are
// refused with 503, Retry-After and a JSON error saying the storage is
// stalled, while the stall lasts, instead of waiting for it; the loading
// client, whose append was in the waiting commit, gets only 200s; once
// the fault clears the database flushes by itself, the waiting append is
// acknowledged, appends succeed and /healthz is ok again; nothing of the
// refused appends is in the log, and after kill -9 every acknowledged
// entry is there.
//
// The fault starts while the database is idle: a compaction that fails
// to write a table loses that table's keys (Badger v4.9.6 drops the
// error, TestBadgerCompactionDropsBuildErrors), which
// TestFaultFUSECompaction covers.
func TestFaultFUSEFlush(t *testing.T) {
	f, in := onFUSE(t, "--commit-wait", "2s")
	in.fillTables(3)
	idle(t, f)
	f.Inject(fusefault.Rule{Op: fusefault.Fsync, Path: "*.sst", Err: syscall.EIO})
	stop := make(chan struct{})
	codes := in.load(50, stop)
	waitFor(t, "the flush error in the server's log", func() bool {
		return strings.Contains(in.srv.stderr.String(), "level=ERROR msg=\"badger: error flushing memtable to disk")
	})
	waitFor(t, "/healthz to say the background writes fail", func() bool {
		h, err := healthz(in.srv.url)
		return err == nil && h["status"] == "degraded" && storageOf(h)["background_error"] != nil && strings.Contains(fmt.Sprint(h["problems"]), "background writes are failing")
	})
	waitFor(t, "a commit to wait for the flush", func() bool {
		h, err := healthz(in.srv.url)
		return err == nil && storageOf(h)["slow"] == true
	})
	for range 2 {
		start := time.Now()
		code, hdr, b := in.postStalled(1, "fault.refused", "")
		var e struct{ Error string }
		if code != 503 || hdr.Get("Retry-After") == "" || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, "storage is stalled") {
			t.Fatalf("append while the flush fails: %d (Retry-After %q) %s, want 503 saying the storage is stalled", code, hdr.Get("Retry-After"), b)
		}
		t.Logf("append refused after %.1f s", time.Since(start).Seconds())
	}
	if h, err := healthz(in.srv.url); err != nil || storageOf(h)["slow"] != true || storageOf(h)["stalled_appends"] != float64(2) {
		t.Fatalf("/healthz after the refusals: the stall should last: %v %v", h, err)
	}
	f.Clear()
	waitFor(t, "/healthz to be ok once the fault cleared", func() bool {
		h, err := healthz(in.srv.url)
		return err == nil && h["status"] == "ok"
	})
	close(stop)
	c := <-codes
	if c[200] == 0 || len(c) != 1 {
		t.Fatalf("the loading client's appends during the fault: %v, want only 200s", c)
	}
	if code, _, b := in.post(5, "fault.kept"); code != 200 {
		t.Fatalf("append after the fault: %d %s", code, b)
	}
	in.checkAcked()
	in.srv.kill()
	in.start()
	in.checkAcked()
}

// TestFaultFUSECompaction: half of the database's table fsyncs fail at
// random under load, so flushes and compactions fail and are retried.
// Badger v4.9.6 drops the error of a compaction's table that could not be
// written and loses its keys (TestBadgerCompactionDropsBuildErrors), so
// what must hold is that the loss is seen: once the errors stop, the log
// reads every entry back, and the entries it reports unreadable are at
// least those the test cannot read among the acknowledged ones; when
// there are any, /healthz is failing and says the database lost data, and
// the server logs it at ERROR; when it reports none, every acknowledged
// entry reads back.
func TestFaultFUSECompaction(t *testing.T) {
	f, in := onFUSE(t)
	in.fillTables(3)
	f.Inject(fusefault.Rule{Op: fusefault.Fsync, Path: "*.sst", Err: syscall.EIO, Chance: 0.5})
	stop := make(chan struct{})
	codes := in.load(50, stop)
	waitFor(t, "table fsyncs to fail", func() bool { return f.Hits(fusefault.Fsync, "*.sst") >= 40 })
	failed := f.Hits(fusefault.Fsync, "*.sst")
	f.Clear()
	close(stop)
	if c := <-codes; c[200] == 0 || len(c) != 1 {
		t.Fatalf("appends during the fault: %v, want only 200s", c)
	}
	var h map[string]any
	waitFor(t, "the log to read its entries back", func() bool {
		var err error
		h, err = healthz(in.srv.url)
		return err == nil && storageOf(h)["scrubbed_at"] != nil
	})
	reported, _ := storageOf(h)["unreadable_entries"].(float64)
	c := mustClient(t, in.srv.url, in.admin)
	lost := 0
	in.mu.Lock()
	for i, lh := range in.acked {
		leaf, err := c.Entry(context.Background(), i)
		if err != nil || !bytes.Equal(client.LeafHash(leaf), lh) {
			lost++
		}
	}
	in.mu.Unlock()
	t.Logf("%d table fsyncs failed; %d of %d acknowledged entries unreadable, %v reported", failed, lost, len(in.acked), reported)
	if float64(lost) > reported {
		t.Fatalf("%d acknowledged entries cannot be read, the log reports %v", lost, reported)
	}
	if reported > 0 {
		if h["status"] != "failing" || !strings.Contains(fmt.Sprint(h["problems"]), "the database lost data") {
			t.Fatalf("/healthz with lost entries: %v", h)
		}
		if !strings.Contains(in.srv.stderr.String(), "the database lost data") {
			t.Fatal("no log line for the lost entries")
		}
	}
}

// checkpoints fetches, verifies and remembers the checkpoints the server
// serves: each must verify with the log's keys and be consistent with
// every one served before it, across restarts.
type checkpoints struct {
	in   *injected
	v    *client.Verifier
	mu   sync.Mutex
	last *checkpoint.Signed
	n    int
	// unchecked were served, but the server went away before their
	// consistency proof: each is checked against the next one served.
	unchecked []*checkpoint.Signed
}

func newCheckpoints(in *injected) *checkpoints {
	in.t.Helper()
	lk, err := os.ReadFile(filepath.Join(in.data, "log.pub"))
	if err != nil {
		in.t.Fatal(err)
	}
	tk, err := os.ReadFile(filepath.Join(in.data, "time.pub"))
	if err != nil {
		in.t.Fatal(err)
	}
	v, err := client.NewVerifier(string(lk), string(tk))
	if err != nil {
		in.t.Fatal(err)
	}
	return &checkpoints{in: in, v: v}
}

// fetch gets the served checkpoint and checks it against the last one
// (and any served before whose proof the server did not answer); it
// returns nil and the error if the server did not answer.
func (c *checkpoints) fetch() (*checkpoint.Signed, error) {
	cl, err := client.New(c.in.srv.url)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := cl.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	cp, err := checkpoint.Open(raw, c.v.Log, c.v.Time)
	if err != nil {
		c.in.t.Errorf("a served checkpoint does not verify: %v\n%s", err, raw)
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	earlier := slices.Clone(c.unchecked)
	if c.last != nil {
		earlier = append(earlier, c.last)
	}
	for _, e := range earlier {
		if err := cl.VerifyConsistency(ctx, e, cp); err != nil && ctx.Err() == nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				// The server went away (a power cut) between serving the
				// checkpoint and its proof: check it at the next one.
				c.unchecked = append(c.unchecked, cp)
				return nil, err
			}
			c.in.t.Errorf("served checkpoint of size %d is not consistent with the one of size %d served before: %v", cp.Size, e.Size, err)
			return nil, err
		}
	}
	c.unchecked = nil // each is consistent with cp, which every later one is checked against
	if c.last == nil || cp.Size >= c.last.Size {
		c.last = cp
	}
	c.n++
	return cp, nil
}

// watch fetches checkpoints until stop is closed.
func (c *checkpoints) watch(stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			c.fetch()
		}
	}()
	return done
}

// TestFaultFUSECheckpointWrite: the checkpoint file (data/checkpoint,
// written as a temporary file, fsynced, renamed over it, and the
// directory fsynced) cannot be written: no space at its write, EIO at its
// fsync, EIO at the directory's fsync. What must hold, for each: appends
// are acknowledged as usual (entries are in the database); /checkpoint
// keeps serving the last checkpoint saved, never one that was not saved;
// /healthz is degraded and says the last signing failed, with the error,
// and the server logs "checkpoint signing failed" with it; once the fault
// clears, checkpoints are signed again by themselves, each consistent
// with those served before; after kill -9 the server starts on the stored
// checkpoint and serves one consistent with all of them.
func TestFaultFUSECheckpointWrite(t *testing.T) {
	f, in := onFUSE(t)
	cps := newCheckpoints(in)
	for _, c := range []struct {
		name string
		rule fusefault.Rule
		want string
	}{
		{"no space", fusefault.Rule{Op: fusefault.Write, Path: ".checkpoint.tmp*", Err: syscall.ENOSPC}, "no space left on device"},
		{"fsync", fusefault.Rule{Op: fusefault.Fsync, Path: ".checkpoint.tmp*", Err: syscall.EIO}, "input/output error"},
		{"directory fsync", fusefault.Rule{Op: fusefault.FsyncDir, Path: "data", Err: syscall.EIO}, "input/output error"},
	} {
		if code, _, b := in.post(5, "fault.kept"); code != 200 {
			t.Fatalf("%s: append before the fault: %d %s", c.name, code, b)
		}
		waitFor(t, "a checkpoint of every entry", func() bool {
			cp, err := cps.fetch()
			return err == nil && cp.Size == in.next
		})
		f.Inject(c.rule)
		if code, _, b := in.post(5, "fault.kept"); code != 200 {
			t.Fatalf("%s: append under the fault: %d %s", c.name, code, b)
		}
		waitFor(t, "/healthz to say the signing failed", func() bool {
			h, err := healthz(in.srv.url)
			return err == nil && h["status"] == "degraded" && strings.Contains(fmt.Sprint(h["problems"]), "the last checkpoint signing failed") && strings.Contains(fmt.Sprint(h["problems"]), c.want)
		})
		if !strings.Contains(in.srv.stderr.String(), `level=ERROR msg="checkpoint signing failed"`) {
			t.Fatalf("%s: no log line for the failed signing:\n%s", c.name, lastLines(in.srv.stderr.String(), 10))
		}
		// What is served now was saved: it does not grow under the fault.
		held, err := cps.fetch()
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if code, _, b := in.post(5, "fault.kept"); code != 200 {
				t.Fatalf("%s: append under the fault: %d %s", c.name, code, b)
			}
			if cp, err := cps.fetch(); err != nil || cp.Size != held.Size {
				t.Fatalf("%s: served a checkpoint of size %d under the fault, after %d (%v)", c.name, cp.Size, held.Size, err)
			}
		}
		if f.Hits(c.rule.Op, c.rule.Path) == 0 {
			t.Fatalf("%s: the fault never hit", c.name)
		}
		f.Clear()
		waitFor(t, "checkpoints to be signed again", func() bool {
			cp, err := cps.fetch()
			h, herr := healthz(in.srv.url)
			return err == nil && cp.Size == in.next && herr == nil && h["status"] == "ok"
		})
	}
	in.srv.kill()
	in.start()
	if _, err := cps.fetch(); err != nil {
		t.Fatalf("checkpoint after the restart: %v", err)
	}
	in.checkAcked()
}

// TestFaultFUSEPowerCut cuts the power at random points under load:
// appends and checkpoint reads run, the file system stops (every
// operation blocks, as on a dead machine), the server is killed, and what
// no fsync made durable is dropped; in every other round a random part of
// each file's unsynced writes survives, torn at an arbitrary byte (a torn
// record at the tail of the database's write-ahead log and value log).
// Then the server starts again. What must hold: it starts without an
// operator; every acknowledged entry is there with its leaf hash; every
// checkpoint served, before and after, verifies and is consistent with
// the ones served before it; appends go on.
func TestFaultFUSEPowerCut(t *testing.T) {
	f, in := onFUSE(t)
	cps := newCheckpoints(in)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 3))
	for round := range 4 {
		stop := make(chan struct{})
		codes := in.loadUntilCut(20, stop)
		watched := cps.watch(stop)
		base := in.ackedSize()
		cps.mu.Lock()
		seen := cps.n
		cps.mu.Unlock()
		waitFor(t, "appends and checkpoints before the cut", func() bool {
			cps.mu.Lock()
			defer cps.mu.Unlock()
			return cps.n > seen+2 && in.ackedSize() > base+200
		})
		time.Sleep(time.Duration(rnd.IntN(700)) * time.Millisecond) // a random point of the load
		f.Cut()
		in.srv.Cmd.Process.Kill()
		if err := f.Reboot(round%2 == 1, rnd, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		<-in.srv.done
		close(stop)
		c := <-codes
		<-watched
		for code := range c {
			if code != 200 && code != 0 {
				t.Fatalf("round %d: appends before the cut: %v", round, c)
			}
		}
		in.start()
		if _, err := cps.fetch(); err != nil {
			t.Fatalf("round %d: checkpoint after the restart: %v", round, err)
		}
		in.checkAcked()
		h, err := healthz(in.srv.url)
		if err != nil {
			t.Fatal(err)
		}
		// Entries committed but not answered before the cut may be there.
		in.mu.Lock()
		in.next = uint64(h["tree_size"].(float64))
		acked := len(in.acked)
		in.mu.Unlock()
		t.Logf("round %d: %d entries acknowledged, tree of %d after the restart, %d checkpoints checked", round, acked, in.ackedSize(), cps.n)
	}
	if code, _, b := in.post(5, "fault.kept"); code != 200 {
		t.Fatalf("append after the last cut: %d %s", code, b)
	}
}

// TestFaultFUSETornTail tears the last record of the database's value
// log and of its write-ahead log: the fsync of one of them is held (a
// slow disk) after the kernel sent it a commit's pages, the power is cut
// then, and a random part of those unsynced pages survives, cut at an
// arbitrary byte. What must hold: the server starts again by itself (the
// database drops the torn tail); every acknowledged entry is there;
// the commit that was never answered is there whole or not at all; the
// served checkpoints stay consistent; appends go on.
func TestFaultFUSETornTail(t *testing.T) {
	f, in := onFUSE(t)
	cps := newCheckpoints(in)
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	for _, file := range []string{"*.vlog", "*.mem", "*.vlog", "*.mem"} {
		for range 5 {
			if code, _, b := in.post(20, "fault.kept"); code != 200 {
				t.Fatalf("append: %d %s", code, b)
			}
		}
		if _, err := cps.fetch(); err != nil {
			t.Fatal(err)
		}
		before := in.ackedSize()
		f.Inject(fusefault.Rule{Op: fusefault.Fsync, Path: file, Delay: time.Minute})
		answered := make(chan int, 1)
		go func() {
			code, _, _, _ := in.tryPost(20, "fault.torn")
			answered <- code
		}()
		waitFor(t, "the commit's fsync to be held", func() bool { return f.Hits(fusefault.Fsync, file) > 0 })
		f.Cut()
		in.srv.Cmd.Process.Kill()
		if err := f.Reboot(true, rnd, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		<-in.srv.done
		if code := <-answered; code == 200 {
			t.Fatalf("%s: the append whose fsync was held was acknowledged", file)
		}
		torn := f.LastTorn()
		if torn.Files == 0 || torn.Kept == 0 || torn.Lost == 0 {
			t.Fatalf("%s: the cut tore nothing: %+v", file, torn)
		}
		in.start()
		in.checkAcked()
		if _, err := cps.fetch(); err != nil {
			t.Fatalf("%s: checkpoint after the restart: %v", file, err)
		}
		h, err := healthz(in.srv.url)
		if err != nil {
			t.Fatal(err)
		}
		size := uint64(h["tree_size"].(float64))
		if size != before && size != before+20 {
			t.Fatalf("%s: the tree holds %d entries after the torn commit of 20 at %d: part of it", file, size, before)
		}
		in.mu.Lock()
		in.next = size
		in.mu.Unlock()
		t.Logf("%s torn (%+v): the unanswered commit is %s", file, torn, map[bool]string{true: "there", false: "gone"}[size > before])
	}
	if code, _, b := in.post(5, "fault.kept"); code != 200 {
		t.Fatalf("append after the torn tails: %d %s", code, b)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
