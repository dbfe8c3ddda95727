package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/internal/listener"
	"github.com/agentlog/agentlog/internal/proctest"
	"github.com/agentlog/agentlog/witness"
	"github.com/agentlog/agentlog/witness/policy"
	"github.com/agentlog/agentlog/witness/witnesstest"
)

var witnessBuild proctest.Binary

// witnessBinary compiles cmd/agentlog-witness once per test binary.
func witnessBinary(t *testing.T) string { return witnessBuild.Get(t, "agentlog-witness", ".") }

// proc is a running "agentlog-witness serve".
type proc struct {
	*proctest.Proc
	url  string
	done chan struct{}
}

func (p *proc) log() string { return p.Stderr.String() }

// startWitness runs "agentlog-witness serve" and waits for its address.
func startWitness(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := proctest.Start(t, bin, "agentlog-witness listening on ", append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	return &proc{Proc: p, url: p.URL, done: p.Done}
}

func post(t *testing.T, url string, b []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url+"/add-checkpoint", "text/plain", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestWitnessProcess runs the real binary: first start creates the keys,
// cosignatures verify with formats/note and carry the NTP server's time, and
// after a SIGKILL in the middle of a stream of cosignatures the restarted
// witness holds at least every size it acknowledged and refuses forks.
func TestWitnessProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := witnessBinary(t)
	const offset = 3 * time.Hour
	ntp := ntptest.Start(t, offset)
	data := t.TempDir()
	lg := witnesstest.NewLog(t, "e2e.example/log")
	lg2 := witnesstest.NewLog(t, "e2e.example/log2") // listed in a --log-list file
	list := filepath.Join(t.TempDir(), "logs")
	if err := os.WriteFile(list, []byte("# logs\n\n"+lg2.VKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--data", data, "--name", "e2e.example/witness", "--log", lg.VKey, "--log-list", list,
		"--ntp", ntp.Addr(), "--rate", "1000", "--burst", "1000"}
	w := startWitness(t, bin, args...)

	if st, err := os.Stat(filepath.Join(data, witness.KeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("witness.key: %v %v", st, err)
	}
	pub, err := os.ReadFile(filepath.Join(data, witness.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	wv, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(string(pub)))
	if err != nil || wv.Name() != "e2e.example/witness" {
		t.Fatalf("witness.pub %q: %v", pub, err)
	}

	lg.Grow(5, "a")
	code, out := post(t, w.url, witnesstest.Body(0, nil, lg.Checkpoint()))
	if code != 200 {
		t.Fatalf("%d %s\n%s", code, out, w.log())
	}
	n, err := note.Open(append(lg.Checkpoint(), out...), note.VerifierList(lg.Verifier(), wv))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("cosignature does not verify: %v", err)
	}
	ts, err := fnote.CoSigV1Timestamp(n.Sigs[1])
	if err != nil {
		t.Fatal(err)
	}
	// The clock follows the NTP server, 3 hours ahead of this host.
	if d := time.Until(ts); d < offset-time.Hour || d > offset+time.Hour {
		t.Errorf("cosignature time %v is %v from the host clock, want about %v", ts, d, offset)
	}

	lg2.Grow(2, "z")
	if code, out := post(t, w.url, witnesstest.Body(0, nil, lg2.Checkpoint())); code != 200 {
		t.Fatalf("log from --log-list: %d %s", code, out)
	}
	unknown := witnesstest.NewLog(t, "e2e.example/unknown")
	if code, out := post(t, w.url, witnesstest.Body(0, nil, unknown.Checkpoint())); code != 404 {
		t.Fatalf("unknown log: %d %s", code, out)
	}

	// Stream growing checkpoints and SIGKILL the witness mid-stream.
	var acked uint64
	size := uint64(5)
	for i := 0; i < 200; i++ {
		lg.Grow(1+i%3, "a")
		next := lg.Size()
		b := witnesstest.Body(size, lg.Proof(size, next), lg.Checkpoint())
		if i == 100 {
			go w.Kill() // in flight with the following requests
		}
		resp, err := http.Post(w.url+"/add-checkpoint", "text/plain", bytes.NewReader(b))
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("size %d: %d", next, resp.StatusCode)
		}
		acked, size = next, next
	}
	<-w.done
	t.Logf("witness acknowledged size %d before SIGKILL", acked)

	w = startWitness(t, bin, args...)
	code, out = post(t, w.url, witnesstest.Body(0, nil, lg.Checkpoint()))
	var held uint64
	if _, err := fmt.Sscanf(out, "%d\n", &held); code != 409 || err != nil || held < acked {
		t.Fatalf("after restart: %d %q, want 409 with a size of at least %d", code, out, acked)
	}

	// A fork of what it cosigned is refused, in every form.
	fork := witnesstest.NewLog(t, lg.Origin)
	fork.Signer = lg.Signer
	fork.Grow(int(held)+4, "b")
	for _, c := range []struct {
		name string
		body []byte
	}{
		{"fork, same size", witnesstest.Body(held, nil, fork.Sign(held, fork.Root(held), lg.Signer))},
		{"fork, larger", witnesstest.Body(held, fork.Proof(held, held+4), fork.Checkpoint())},
	} {
		if code, out := post(t, w.url, c.body); code != 422 {
			t.Errorf("%s: %d %s", c.name, code, out)
		}
	}
	// The log itself goes on.
	lg.Grow(2, "a")
	if code, out := post(t, w.url, witnesstest.Body(held, lg.Proof(held, lg.Size()), lg.Checkpoint())); code != 200 {
		t.Fatalf("consistent growth after restart: %d %s", code, out)
	}
	resp, err := http.Get(w.url + "/" + policy.OriginHash(lg.Origin) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	latest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := note.Open(latest, note.VerifierList(lg.Verifier(), wv)); err != nil || !bytes.HasPrefix(latest, lg.Checkpoint()[:bytes.Index(lg.Checkpoint(), []byte("\n\n"))]) {
		t.Fatalf("monitoring endpoint: %v\n%s", err, latest)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get(w.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || (path == "/metrics" && !bytes.Contains(b, []byte("agentlog_witness_cosigned_size"))) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}

	// A second process on the same data directory is refused.
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "in use") {
		t.Errorf("second witness on the same directory: %v %s", err, out)
	}
}

// TestWitnessConnectionFlood: with --max-connections taken by idle
// clients, /healthz still answers on a reserve connection, add-checkpoint
// gets 503 with Retry-After there, connections beyond the reserve are
// closed on accept instead of exhausting the file descriptors its state
// files need, and the witness cosigns again once they go.
func TestWitnessConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const maxConns = 20
	lg := witnesstest.NewLog(t, "flood.example/log")
	w := startWitness(t, witnessBinary(t), "--data", t.TempDir(), "--name", "flood.example/witness", "--log", lg.VKey,
		"--ntp", ntptest.Start(t, 0).Addr(), "--max-connections", fmt.Sprint(maxConns))
	proctest.CheckConnectionCap(t, strings.TrimPrefix(w.url, "http://"), maxConns, listener.DefaultReserve,
		"/healthz", "/"+policy.OriginHash(lg.Origin)+"/checkpoint", false)
	lg.Grow(3, "a")
	if code, out := post(t, w.url, witnesstest.Body(0, nil, lg.Checkpoint())); code != 200 {
		t.Fatalf("add-checkpoint once the connections went: %d %s", code, out)
	}
}
