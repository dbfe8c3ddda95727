package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/proctest"
)

// faultBuild is the binary with storage fault injection compiled in
// (log/faultinject.go): the default binary never has it.
var faultBuild = proctest.Binary{Tags: "faultinject"}

// injected runs the fault-injection binary on data, its storage faults
// controlled by the file ctl (log/faultinject.go).
type injected struct {
	t         *testing.T
	data, ctl string
	ntp       string
	srv       *serverProc
	admin     string
	sess      string
	mu        sync.Mutex        // guards acked and next (appends from a load goroutine)
	acked     map[uint64][]byte // index -> leaf hash, of every acknowledged entry
	next      uint64            // the index the next acknowledged entry must get
	flags     []string          // more serve flags
}

// ackedSize is the index the next acknowledged entry must get.
func (in *injected) ackedSize() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.next
}

func startInjected(t *testing.T) *injected {
	if testing.Short() {
		t.Skip("fault-injection tests build and run the binary")
	}
	return startInjectedAt(t, t.TempDir())
}

// startInjectedAt is startInjected with the data directory data, and
// flags added to serve's.
func startInjectedAt(t *testing.T, data string, flags ...string) *injected {
	in := &injected{t: t, data: data, ctl: filepath.Join(t.TempDir(), "fault"), ntp: ntptest.Start(t, 0).Addr(), acked: map[uint64][]byte{}, flags: flags}
	t.Setenv("AGENTLOG_FAULTINJECT", in.ctl)
	in.start()
	tok, err := os.ReadFile(filepath.Join(in.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	in.admin = strings.TrimSpace(string(tok))
	in.sess = provisionSession(t, in.srv.url, in.admin, "faulty", "storage")
	h, _ := healthz(in.srv.url)
	in.next = uint64(h["tree_size"].(float64))
	return in
}

func (in *injected) start() {
	in.srv = startServer(in.t, faultBuild.Get(in.t, "agentlog", "."), append([]string{"--data", in.data, "--ntp", in.ntp, "--checkpoint-interval", "100ms", "--anomaly=false"}, in.flags...)...)
	// The line is written to stderr before the ready line to stdout, but
	// the two pipes are copied by separate goroutines: wait for it.
	waitFor(in.t, "the faultinject binary to say fault injection is on", func() bool {
		return strings.Contains(in.srv.stderr.String(), "storage fault injection is on")
	})
}

// fault sets the injected fault ("" for none).
func (in *injected) fault(f string) {
	if err := os.WriteFile(in.ctl, []byte(f+"\n"), 0o644); err != nil {
		in.t.Fatal(err)
	}
}

// post appends n records of action and returns the answer; a 200 is
// recorded as acknowledged, and must continue the index sequence.
func (in *injected) post(n int, action string) (int, http.Header, []byte) {
	in.t.Helper()
	code, hdr, body, err := in.tryPost(n, action)
	if err != nil {
		in.t.Fatalf("append: %v (the server died?)\n%s", err, in.srv.stderr)
	}
	return code, hdr, body
}

// tryPost is post, returning the error of a request that got no answer
// (not acknowledged) instead of failing the test.
func (in *injected) tryPost(n int, action string) (int, http.Header, []byte, error) {
	in.t.Helper()
	return in.tryPostKey(context.Background(), n, action, "")
}

// tryPostKey is tryPost with ctx and, unless key is empty, an
// Idempotency-Key.
func (in *injected) tryPostKey(ctx context.Context, n int, action, key string) (int, http.Header, []byte, error) {
	in.t.Helper()
	var b strings.Builder
	b.WriteString(`{"entries":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"action":%q,"resource":"r/%d"}`, action, i)
	}
	b.WriteString(`]}`)
	req, _ := http.NewRequestWithContext(ctx, "POST", in.srv.url+"/v1/entries", strings.NewReader(b.String()))
	req.Header.Set("Authorization", "Bearer "+in.sess)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	if resp.StatusCode == 200 {
		var ar struct {
			Entries []struct {
				Index    uint64
				LeafHash []byte `json:"leaf_hash"`
			}
		}
		if err := json.Unmarshal(body, &ar); err != nil || len(ar.Entries) != n {
			in.t.Fatalf("append answer %s", body)
		}
		in.mu.Lock()
		defer in.mu.Unlock()
		for j, e := range ar.Entries {
			if e.Index != in.next+uint64(j) {
				in.t.Fatalf("acknowledged entry %d got index %d, want %d", j, e.Index, in.next+uint64(j))
			}
			in.acked[e.Index] = e.LeafHash
		}
		in.next += uint64(n)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// checkAcked reads back every acknowledged entry and its leaf hash, and
// checks that no entry of a refused append is in the log.
func (in *injected) checkAcked() {
	in.t.Helper()
	c := mustClient(in.t, in.srv.url, in.admin)
	ctx := context.Background()
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, h := range in.acked {
		leaf, err := c.Entry(ctx, i)
		if err != nil || !bytes.Equal(client.LeafHash(leaf), h) {
			in.t.Fatalf("acknowledged entry %d: %s %v (leaf hash differs: %v)", i, leaf, err, err == nil)
		}
	}
	if n := in.queryCount("fault.refused"); n != 0 {
		in.t.Fatalf("the query finds %d entries of refused appends", n)
	}
}

func (in *injected) authGet(path string) *http.Request {
	req, _ := http.NewRequest("GET", in.srv.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+in.admin)
	return req
}

func storageOf(h map[string]any) map[string]any {
	s, _ := h["storage"].(map[string]any)
	return s
}

// TestFaultStorageErrors injects fsync errors, write errors and a device
// without space into the real process's storage. What must hold: every
// append during the fault is refused with 503 (507 for no space) and
// Retry-After, never 500, operator actions too; /healthz fails and says
// why; reads and proofs are served; when the fault clears the log
// recovers by itself (no append needed to prompt it); the next
// acknowledged entry takes the next index; and after kill -9 every
// acknowledged entry is there, byte for byte, and none refused.
func TestFaultStorageErrors(t *testing.T) {
	for _, c := range []struct {
		fault string
		code  int
	}{{"fsync-error", 503}, {"write-error", 503}, {"no-space", 507}} {
		t.Run(c.fault, func(t *testing.T) {
			in := startInjected(t)
			for range 4 {
				if code, _, b := in.post(3, "fault.kept"); code != 200 {
					t.Fatalf("append before the fault: %d %s", code, b)
				}
			}
			in.fault(c.fault)
			for _, n := range []int{1, 300, 2} {
				code, hdr, b := in.post(n, "fault.refused")
				var e struct{ Error string }
				if code != c.code || hdr.Get("Retry-After") == "" || json.Unmarshal(b, &e) != nil || e.Error == "" {
					t.Fatalf("append under %s: %d (Retry-After %q) %s, want %d with a JSON error", c.fault, code, hdr.Get("Retry-After"), b, c.code)
				}
			}
			req, _ := http.NewRequest("POST", in.srv.url+"/v1/tokens", strings.NewReader(`{"name":"carol","role":"auditor"}`))
			req.Header.Set("Authorization", "Bearer "+in.admin)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != c.code {
				t.Fatalf("token create under %s: %v %v, want %d", c.fault, resp.Status, err, c.code)
			}
			resp.Body.Close()
			h, err := healthz(in.srv.url)
			if err != nil || h["status"] != "failing" || storageOf(h)["failing"] != true || !strings.Contains(fmt.Sprint(h["problems"]), "storage writes are failing") {
				t.Fatalf("/healthz under %s: %v %v", c.fault, h, err)
			}
			for _, path := range []string{"/checkpoint", "/v1/proof/inclusion?index=0&size=2", "/tile/0/000.p/2"} {
				resp, err := http.Get(in.srv.url + path)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("GET %s under %s: %v %v", path, c.fault, resp, err)
				}
				resp.Body.Close()
			}

			in.fault("")
			waitFor(t, "the storage to recover by itself", func() bool {
				h, err := healthz(in.srv.url)
				return err == nil && storageOf(h)["failing"] == false && h["status"] != "failing"
			})
			if code, _, b := in.post(5, "fault.kept"); code != 200 {
				t.Fatalf("append after the fault: %d %s", code, b)
			}
			// The token refused under the fault does not exist.
			resp, err = http.DefaultClient.Do(in.authGet("/v1/tokens"))
			if err != nil {
				t.Fatal(err)
			}
			tb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(tb), "carol") {
				t.Fatalf("the token refused under %s exists: %s", c.fault, tb)
			}
			in.checkAcked()

			in.srv.kill()
			in.start()
			in.checkAcked()
			if code, _, b := in.post(2, "fault.kept"); code != 200 {
				t.Fatalf("append after the restart: %d %s", code, b)
			}
		})
	}
}

// TestFaultStorageSlow injects a slow fsync: appends wait for it and are
// acknowledged only once durable, /healthz says the storage is slow
// (degraded) while a commit waits, and is no longer once syncs are fast.
func TestFaultStorageSlow(t *testing.T) {
	in := startInjected(t)
	in.fault("slow-sync 1500ms")
	done := make(chan int, 1)
	go func() {
		code, _, _ := in.post(10, "fault.kept")
		done <- code
	}()
	waitFor(t, "/healthz to say the storage is slow", func() bool {
		h, err := healthz(in.srv.url)
		return err == nil && storageOf(h)["slow"] == true && h["status"] == "degraded" && strings.Contains(fmt.Sprint(h["problems"]), "storage is slow")
	})
	if code := <-done; code != 200 {
		t.Fatalf("append under a slow sync: %d", code)
	}
	in.fault("")
	if code, _, b := in.post(1, "fault.kept"); code != 200 {
		t.Fatalf("append after the slow sync: %d %s", code, b)
	}
	if h, err := healthz(in.srv.url); err != nil || storageOf(h)["slow"] != false {
		t.Fatalf("/healthz once syncs are fast again: %v %v", h, err)
	}
	in.srv.kill()
	in.start()
	in.checkAcked()
}

// TestFaultInjectionNotInDefaultBinary: the binary users build has no
// fault injection: its build settings lack the tag (the fault suite's
// binary has it), and with the control variable set and a fault asked
// for, it appends normally and says nothing of faults.
func TestFaultInjectionNotInDefaultBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	tags := func(bin string) string {
		out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("go version -m: %v %s", err, out)
		}
		return string(out)
	}
	if s := tags(faultBuild.Get(t, "agentlog", ".")); !strings.Contains(s, "-tags=faultinject") {
		t.Fatalf("the fault suite's binary lacks the tag:\n%s", s)
	}
	if s := tags(agentlogBinary(t)); strings.Contains(s, "faultinject") {
		t.Fatalf("the default binary was built with fault injection:\n%s", s)
	}
	ctl := filepath.Join(t.TempDir(), "fault")
	if err := os.WriteFile(ctl, []byte("write-error\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AGENTLOG_FAULTINJECT", ctl)
	srv, data := startFaultServer(t)
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	sess := provisionSession(t, srv.url, strings.TrimSpace(string(tok)), "plain", "t")
	req, _ := http.NewRequest("POST", srv.url+"/v1/entries", strings.NewReader(`{"entries":[{"action":"a"}]}`))
	req.Header.Set("Authorization", "Bearer "+sess)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("append with AGENTLOG_FAULTINJECT set: %v %v", resp, err)
	}
	resp.Body.Close()
	if strings.Contains(srv.stderr.String(), "fault injection") {
		t.Fatalf("the default binary mentions fault injection:\n%s", srv.stderr)
	}
}

// TestFaultDiskFilledByAnother: another process keeps the log's file
// system filled to its last byte while the log runs. Badger writes its
// tables through memory maps, so a flush with no room (here the flush of
// the memtable at shutdown) kills the server with SIGBUS: with no reserved
// blocks (mkfs.ext4 -m 0) it did, in table.CreateTable. The file system's
// reserved blocks, usable by the log's user only (root here; tune2fs -u in
// production), give it room that the unprivileged filler cannot take
// (operations.md, Disk). What must hold:
// the filler stops at the reserve, appends get 507 and write nothing
// (TestFaultDiskFull checks what /healthz says), the server shuts down
// cleanly, restarts, serves every acknowledged entry, and appends resume
// by themselves once the filler is gone.
func TestFaultDiskFilledByAnother(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting an ext4 image needs root (CI runs as root)")
	}
	if testing.Short() {
		t.Skip("fault-injection tests build and run the binary")
	}
	dir := t.TempDir()
	// The filler's user must reach the mount point.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	for _, c := range [][]string{
		{"truncate", "-s", "384M", img},
		{"mkfs.ext4", "-q", "-F", "-m", "25", img}, // 96 MiB reserved for root, the log's user here
		{"mkdir", mnt},
		{"mount", "-o", "loop", img, mnt},
		{"chmod", "0777", mnt},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	data := filepath.Join(mnt, "data")
	ntp := ntptest.Start(t, 0)
	args := []string{"--data", data, "--ntp", ntp.Addr(), "--checkpoint-interval", "100ms", "--anomaly=false", "--value-log-file-mib", "16", "--disk-reserve-mib", "32"}
	srv := startServer(t, agentlogBinary(t), args...)
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(tok))
	sess := provisionSession(t, srv.url, admin, "filler", "disk")
	var body strings.Builder
	body.WriteString(`{"entries":[`)
	for i := range 16 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"action":"fill","attributes":{"b":"%s"}}`, strings.Repeat("d", 60000))
	}
	body.WriteString(`]}`)
	var acked []uint64
	post := func() int {
		req, _ := http.NewRequest("POST", srv.url+"/v1/entries", strings.NewReader(body.String()))
		req.Header.Set("Authorization", "Bearer "+sess)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("append: %v (the server died?)\n%s", err, srv.stderr)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 {
			var ar struct{ Entries []struct{ Index uint64 } }
			if json.Unmarshal(b, &ar) != nil || len(ar.Entries) != 16 {
				t.Fatalf("append answer %s", b)
			}
			acked = append(acked, ar.Entries[15].Index)
		} else if resp.StatusCode != 507 {
			t.Fatalf("append: %d %s", resp.StatusCode, b)
		}
		return resp.StatusCode
	}
	for range 40 { // about 40 MB: the memtables fill and flush
		if post() != 200 {
			t.Fatal("refused before the filler ran")
		}
	}
	// The filler, an unprivileged process, writes file after file for as
	// long as it runs, taking whatever space is freed.
	filler := exec.Command("sh", "-c", `i=0; while :; do dd if=/dev/zero of=f$i bs=1M 2>/dev/null; i=$((i+1)); sleep 0.05; done`)
	filler.Dir = mnt
	filler.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := filler.Start(); err != nil {
		t.Fatal(err)
	}
	stopFiller := func() {
		syscall.Kill(-filler.Process.Pid, syscall.SIGKILL)
		filler.Wait()
	}
	defer stopFiller()
	waitFor(t, "the filler to fill the file system", func() bool {
		var st syscall.Statfs_t
		return syscall.Statfs(mnt, &st) == nil && st.Bavail == 0
	})
	for refused := 0; refused < 20; {
		if post() == 507 {
			refused++
		}
	}
	// A graceful stop flushes the memtable into a new table.
	srv.Cmd.Process.Signal(syscall.SIGTERM)
	<-srv.done
	if ps := srv.Cmd.ProcessState; !ps.Exited() || ps.ExitCode() != 0 {
		t.Fatalf("the server stopped with %v on the filled file system:\n%s", ps, srv.stderr)
	}
	srv = startServer(t, agentlogBinary(t), args...)
	c := mustClient(t, srv.url, admin)
	for _, i := range acked {
		if _, err := c.Entry(context.Background(), i); err != nil {
			t.Fatalf("acknowledged entry %d: %v", i, err)
		}
	}
	if code := post(); code != 507 {
		t.Fatalf("append after the restart on the filled file system: %d", code)
	}
	stopFiller()
	files, _ := filepath.Glob(filepath.Join(mnt, "f*"))
	for _, f := range files {
		os.Remove(f)
	}
	waitFor(t, "appends to resume", func() bool { return post() == 200 })
}
