package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/agentlog/agentlog/client"
)

// TestSplitBrainQuarantine: an active log in local durability is paused
// (SIGSTOP) under load, so that it has acknowledged entries the bucket
// does not hold yet; the standby takes over; the old active resumes
// (SIGCONT) believing itself active. It is superseded at its next lock
// write, stops signing and refuses appends, and every entry it ever
// acknowledged is either in the log at the same index with the same leaf
// hash or in its quarantine file: none is lost. Every checkpoint in the
// bucket's history is consistent with the new active's.
func TestSplitBrainQuarantine(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	fp := startFailoverPair(t, "split-brain.example", false, "--durability", "local", "--checkpoint-interval", "1s")
	a, s := fp.a, fp.s
	ctx := context.Background()
	adminTok, _ := os.ReadFile(filepath.Join(fp.dataA, "admin.token"))
	sess := provisionSession(t, a.url, string(adminTok), "bot", "split-brain")
	type ack struct {
		index uint64
		hash  []byte
	}
	var mu sync.Mutex
	var acks []ack
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			c := mustClient(t, a.url, sess)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := c.Append(ctx, client.Record{Action: "load", Resource: fmt.Sprint(g, "/", i)})
				if err != nil {
					continue // refused once superseded
				}
				mu.Lock()
				acks = append(acks, ack{res[0].Index, res[0].LeafHash})
				mu.Unlock()
			}
		})
	}
	// Pause once the bucket holds some of the load (the standby has it)
	// and more is acknowledged after it.
	waitFor(t, "the standby to follow some of the load", func() bool {
		h, err := healthz(s.url)
		size, _ := h["tree_size"].(float64)
		return err == nil && size > 0
	})
	mu.Lock()
	n := len(acks)
	mu.Unlock()
	waitFor(t, "more acknowledged load", func() bool { mu.Lock(); defer mu.Unlock(); return len(acks) >= n+100 })
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGCONT) })
	close(stop)
	role := func(url string) string {
		h, err := healthz(url)
		if err != nil {
			return ""
		}
		m, _ := h["mirror"].(map[string]any)
		r, _ := m["role"].(string)
		return r
	}
	waitFor(t, "the standby to take over", func() bool { return role(s.url) == "active" })
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	waitFor(t, "the old active to find itself superseded", func() bool { return role(a.url) == "superseded" })
	if _, err := mustClient(t, a.url, sess).Append(ctx, client.Record{Action: "after"}); err == nil {
		t.Fatal("the superseded node accepted an append")
	}

	// Every acknowledged entry: in the log, or in the quarantine file.
	// The quarantine is written as the node finds itself superseded.
	var files []string
	waitFor(t, "the old active's quarantine file", func() bool {
		files, _ = filepath.Glob(filepath.Join(fp.dataA, "quarantine", "*.ndjson"))
		return len(files) > 0
	})
	quarantined := map[string]uint64{}
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("quarantine file %s: %v, mode %v", f, err, st.Mode())
		}
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var q struct {
				Index    uint64 `json:"index"`
				LeafHash string `json:"leaf_hash"`
			}
			if err := json.Unmarshal([]byte(line), &q); err != nil {
				t.Fatalf("quarantine line %q: %v", line, err)
			}
			quarantined[q.LeafHash] = q.Index
		}
	}
	admin := mustClient(t, s.url, string(adminTok))
	var inLog, inQuarantine int
	for _, k := range acks {
		if i, ok := quarantined[base64.StdEncoding.EncodeToString(k.hash)]; ok && i == k.index {
			inQuarantine++
			continue
		}
		e, err := admin.Entry(ctx, k.index)
		if err != nil {
			t.Fatalf("acknowledged entry %d is neither in the log (%v) nor in quarantine (%d quarantined in %v); the old active's log:\n%s", k.index, err, len(quarantined), files, a.stderr)
		}
		if h := sha256.Sum256(append([]byte{0}, e...)); !bytes.Equal(h[:], k.hash) {
			t.Fatalf("acknowledged entry %d is neither in the log (another entry is there) nor in quarantine", k.index)
		}
		inLog++
	}
	t.Logf("%d acknowledged entries: %d in the log, %d in the old active's quarantine (%v)", len(acks), inLog, inQuarantine, files)
	if inQuarantine == 0 {
		t.Fatal("no acknowledged entry was left unmirrored at the pause: the test did not exercise the quarantine")
	}

	// No fork in the bucket's checkpoint history.
	logKey, _ := os.ReadFile(filepath.Join(fp.dataA, "log.pub"))
	timeKey, _ := os.ReadFile(filepath.Join(fp.dataA, "time.pub"))
	v, err := client.NewVerifier(strings.TrimSpace(string(logKey)), strings.TrimSpace(string(timeKey)))
	if err != nil {
		t.Fatal(err)
	}
	c := mustClient(t, s.url, sess)
	if _, err := c.Append(ctx, client.Record{Action: "on-the-new-active"}); err != nil {
		t.Fatal(err)
	}
	hist := bucketHistory(t, fp.e, "log/checkpoint", v)
	var top uint64
	for _, cp := range hist {
		top = max(top, cp.Size)
	}
	final := waitCheckpoint(t, c, v, top)
	for _, cp := range hist {
		if err := c.VerifyConsistency(ctx, cp, final); err != nil {
			t.Fatalf("bucket checkpoint at size %d is not consistent with the new active's at %d: %v", cp.Size, final.Size, err)
		}
	}
	t.Logf("%d checkpoint versions in the bucket, all consistent with the new active's at size %d", len(hist), final.Size)
}
