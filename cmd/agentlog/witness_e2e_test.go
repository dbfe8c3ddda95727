package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/witness"
	"github.com/agentlog/agentlog/witness/policy"
)

// witnessProc is a running "agentlog-witness serve".
type witnessProc = serverProc

func startWitnessProc(t *testing.T, bin string, args ...string) *witnessProc {
	t.Helper()
	return startProc(t, bin, "agentlog-witness listening on ", append([]string{"serve"}, args...)...)
}

// appendEntries appends n entries with the agent session credential sess
// and returns the tree size after them (other entries, such as the agent's
// registration, count too).
func appendEntries(t *testing.T, url, sess string, n int) uint64 {
	t.Helper()
	c := mustClient(t, url, sess)
	recs := make([]client.Record, n)
	for i := range recs {
		recs[i] = client.Record{Action: "witness.e2e", Resource: fmt.Sprint(i)}
	}
	res, err := c.Append(context.Background(), recs...)
	if err != nil {
		t.Fatal(err)
	}
	return res[len(res)-1].Index + 1
}

func getBody(url string) (int, []byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestWitnessedLog runs the log with three real witness processes and a
// quorum of two: it publishes only cosigned checkpoints, keeps going with
// one witness stopped, holds back (never publishes unwitnessed) with two
// stopped, and catches up when a witness comes back.
func TestWitnessedLog(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binaries")
	}
	bin, wbin := agentlogBinary(t), witnessBinary(t)
	ntp := ntptest.Start(t, 0)
	const origin = "e2e.example/witnessed"
	data := t.TempDir()
	keys, _, err := checkpoint.LoadOrCreateKeys(data, origin) // the server reuses them
	if err != nil {
		t.Fatal(err)
	}

	var procs [3]*witnessProc
	var wargs [3][]string
	var policyText strings.Builder
	fmt.Fprintf(&policyText, "# e2e policy\nlog %s\n", keys.LogVKey)
	for i := range procs {
		wdir := t.TempDir()
		wargs[i] = []string{"--data", wdir, "--listen", "127.0.0.1:0", "--name", fmt.Sprintf("w%d.e2e.example", i), "--log", keys.LogVKey, "--ntp", ntp.Addr()}
		procs[i] = startWitnessProc(t, wbin, wargs[i]...)
		pub, err := os.ReadFile(filepath.Join(wdir, witness.PubFile))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&policyText, "witness W%d %s %s\n", i, strings.TrimSpace(string(pub)), procs[i].url)
		// Restarts keep the address, so the policy stays right.
		wargs[i][3] = strings.TrimPrefix(procs[i].url, "http://")
	}
	// A fourth witness answers every request with a well-formed but
	// invalid cosignature: it must never count.
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "— garbage.e2e.example %s\n", base64.StdEncoding.EncodeToString(make([]byte, 4+8+64)))
	}))
	defer garbage.Close()
	_, gkey, err := checkpoint.GenerateTimeKey(nil, "garbage.e2e.example")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&policyText, "witness G %s %s\n", gkey, garbage.URL)
	policyText.WriteString("group Q 2 W0 W1 W2 G\nquorum Q\n")
	policyFile := filepath.Join(t.TempDir(), "policy")
	if err := os.WriteFile(policyFile, []byte(policyText.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse([]byte(policyText.String()))
	if err != nil {
		t.Fatal(err)
	}

	srv := startServer(t, bin, "--data", data, "--origin", origin, "--ntp", ntp.Addr(),
		"--checkpoint-interval", "100ms", "--witness-policy", policyFile)
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	sess := provisionSession(t, srv.url, string(tok), "witnessed-writer", "witness-e2e")

	// served returns /checkpoint verified against the policy; every
	// checkpoint served must meet the quorum (the default is to hold back).
	served := func() (*policy.Verified, bool) {
		code, raw, err := getBody(srv.url + "/checkpoint")
		if err != nil || code == http.StatusServiceUnavailable {
			return nil, false // nothing cosigned yet
		}
		v, err := p.Verify(raw)
		if err != nil {
			t.Fatalf("/checkpoint serves a checkpoint that fails the policy: %v\n%s", err, raw)
		}
		return v, true
	}
	waitSize := func(size uint64) *policy.Verified {
		var v *policy.Verified
		waitFor(t, fmt.Sprintf("a cosigned checkpoint of size %d", size), func() bool {
			var ok bool
			v, ok = served()
			return ok && v.Size >= size
		})
		return v
	}

	if v := waitSize(appendEntries(t, srv.url, sess, 10)); len(v.Cosigners) < 2 {
		t.Fatalf("cosigners %v", v.Cosigners)
	}

	// One witness stopped: the quorum of two still holds.
	procs[2].kill()
	v := waitSize(appendEntries(t, srv.url, sess, 20))
	for _, w := range v.Cosigners {
		if w.Name == "W2" || w.Name == "G" {
			t.Fatalf("witness %s cannot have cosigned size %d", w.Name, v.Size)
		}
	}
	h, err := healthz(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	if ws, _ := h["witnesses"].(map[string]any); ws == nil || ws["hold_back"] != true {
		t.Errorf("/healthz has no witness state: %v", h)
	}
	if _, m, err := getBody(srv.url + "/metrics"); err != nil || !strings.Contains(string(m), "agentlog_witnessing_quorum_size") {
		t.Errorf("metrics: %v", err)
	}

	// Two stopped (and one answering garbage): the log keeps appending and
	// signing, but /checkpoint keeps serving the last cosigned checkpoint.
	procs[1].kill()
	size := appendEntries(t, srv.url, sess, 5)
	waitFor(t, fmt.Sprintf("the log to sign size %d", size), func() bool {
		h, err := healthz(srv.url)
		if err != nil {
			return false
		}
		c, _ := h["checkpoint"].(map[string]any)
		signed, _ := c["size"].(float64)
		return uint64(signed) >= size
	})
	if v, ok := served(); !ok || v.Size >= size {
		t.Fatalf("an unwitnessed checkpoint was published: %+v", v)
	}

	// The witness comes back (same data, same address): the log catches up.
	procs[1] = startWitnessProc(t, wbin, wargs[1]...)
	v = waitSize(size)
	if len(v.Cosigners) != 2 {
		t.Fatalf("cosigners %v", v.Cosigners)
	}
	if _, err := p.Verify([]byte("not a checkpoint")); err == nil || errors.Is(err, policy.ErrQuorum) {
		t.Fatal("garbage verified")
	}

	// agentlog verify --policy checks the quorum; a policy the served
	// checkpoint cannot meet fails it.
	out, err := exec.Command(bin, "verify", "--server", srv.url, "--log-key", filepath.Join(data, "log.pub"), "--policy", policyFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "witness quorum OK") {
		t.Fatalf("agentlog verify --policy: %v\n%s", err, out)
	}
	strict := filepath.Join(t.TempDir(), "strict")
	os.WriteFile(strict, []byte(strings.Replace(policyText.String(), "group Q 2", "group Q 3", 1)), 0o644)
	out, err = exec.Command(bin, "verify", "--server", srv.url, "--log-key", filepath.Join(data, "log.pub"), "--policy", strict).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "quorum") {
		t.Fatalf("agentlog verify with an unmet policy: %v\n%s", err, out)
	}
}
