package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/cmdline"
	"github.com/agentlog/agentlog/witness"
	"golang.org/x/mod/sumdb/note"
)

// TestControlsAndHealthAlertsE2E runs the real binary with a real witness
// process and two loopback NTP servers. A clean log reports every control
// passing; then, with known problems, the log raises sequence_gap once,
// ntp_unsynced and checkpoint_stalled once each while NTP stops answering
// and clears them when it answers again, ntp_unsynced once more while an
// NTP server lies, and witness_quorum_lost once for
// a killed witness, across a SIGKILL and restart of the log (the episode
// is neither raised again nor forgotten); agentlog controls reports
// exactly those problems while they last.
func TestControlsAndHealthAlertsE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binaries")
	}
	bin, wbin := agentlogBinary(t), witnessBinary(t)
	// Two NTP servers: silencing both, or one lying (the two then
	// disagree), leaves the clock unsynchronized.
	ntp, ntp2 := ntptest.Start(t, 0), ntptest.Start(t, 0)
	const origin = "e2e.example/controls"
	data := t.TempDir()
	keys, _, err := checkpoint.LoadOrCreateKeys(data, origin)
	if err != nil {
		t.Fatal(err)
	}
	wdir := t.TempDir()
	wargs := []string{"--data", wdir, "--listen", "127.0.0.1:0", "--name", "w0.e2e.example", "--log", keys.LogVKey, "--ntp", ntp.Addr()}
	wp := startWitnessProc(t, wbin, wargs...)
	wargs[3] = strings.TrimPrefix(wp.url, "http://") // a restart keeps the address
	pub, err := os.ReadFile(filepath.Join(wdir, witness.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(t.TempDir(), "policy")
	policy := fmt.Sprintf("log %s\nwitness W0 %s %s\nquorum W0\n", keys.LogVKey, strings.TrimSpace(string(pub)), wp.url)
	if err := os.WriteFile(policyFile, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	// --health-alert-after is longer than the witness client's lag
	// tolerance: right after a restart the client reads a dead witness as
	// fine until then, which must not end its episode.
	args := []string{"--data", data, "--origin", origin, "--ntp", ntp.Addr(), "--ntp", ntp2.Addr(), "--ntp-interval", "200ms", "--require-ntp",
		"--checkpoint-interval", "100ms", "--witness-policy", policyFile,
		"--witness-lag-tolerance", "2s", "--health-alert-after", "4s"}
	srv := startServer(t, bin, args...)
	tokFile := filepath.Join(data, "admin.token")
	tok, _ := os.ReadFile(tokFile)
	ctx := context.Background()
	admin := mustClient(t, srv.url, string(tok))

	// A scoped, approved agent acting with consecutive seq numbers.
	key, _ := agentlog.GenerateAgentKey("ctl-bot")
	if _, err := admin.RegisterAgent(ctx, client.AgentRegistration{ID: "ctl-bot", Owner: "e2e", PublicKey: key.Public().(ed25519.PublicKey), Scope: json.RawMessage(`{"actions":["db.*"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApproveAgent(ctx, "ctl-bot"); err != nil {
		t.Fatal(err)
	}
	a, err := client.NewAgent(srv.url, client.AgentConfig{ID: "ctl-bot", Key: key, Task: "controls", TTL: 2 * time.Hour, NoSequence: true})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := a.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	agentC := mustClient(t, srv.url, sess.Credential)
	appendSeq := func(seqs ...uint64) uint64 {
		t.Helper()
		var recs []client.Record
		for _, s := range seqs {
			recs = append(recs, client.Record{Action: "db.query", Seq: s})
		}
		res, err := agentC.Append(ctx, recs...)
		if err != nil {
			t.Fatal(err)
		}
		return res[len(res)-1].Index + 1
	}
	size := appendSeq(1, 2, 3)

	controls := func() *agentlog.Controls {
		t.Helper()
		out := mustCLI(t, bin, "controls", "--server", srv.url, "--token-file", tokFile, "--window", "1h")
		var c agentlog.Controls
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("controls: %v\n%s", err, out)
		}
		return &c
	}
	failing := func(c *agentlog.Controls) []string {
		var out []string
		for _, k := range c.Controls {
			if !k.Passing {
				out = append(out, k.ID)
			}
		}
		return out
	}
	// Clean: once a cosigned checkpoint covers the tree, every control passes.
	waitFor(t, "a clean control status", func() bool {
		c := controls()
		return c.Passing && c.Checkpoint.Size >= size
	})
	c := controls()
	if len(c.Controls) != 8 || len(c.Checkpoint.Cosigners) != 1 || c.Checkpoint.Cosigners[0] != "W0" || !c.Clock.Synced || c.Alerts.Open != 0 {
		t.Fatalf("clean log: %+v", c)
	}
	if _, _, code := cli(t, bin, "controls", "--server", srv.url, "--token-file", tokFile, "--fail"); code != 0 {
		t.Fatalf("controls --fail on a clean log: exit %d", code)
	}
	// The GRC shapes: one record per control, stable ids.
	out := mustCLI(t, bin, "controls", "--server", srv.url, "--token-file", tokFile, "--format", "vanta", "--vanta-resource-id", "r1")
	var vs struct {
		ResourceID string `json:"resourceId"`
		Resources  []struct {
			DisplayName, UniqueID, ExternalURL string
			CustomProperties                   map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &vs); err != nil || vs.ResourceID != "r1" || len(vs.Resources) != 8 ||
		vs.Resources[0].UniqueID != origin+"/"+agentlog.ControlCheckpointVerified || vs.Resources[0].CustomProperties["passing"] != true {
		t.Fatalf("vanta body %v %s", err, out)
	}
	out = mustCLI(t, bin, "controls", "--server", srv.url, "--token-file", tokFile, "--format", "drata")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 8 || !strings.Contains(lines[7], `"id":"`+origin+`/alerts_open"`) {
		t.Fatalf("drata records %s", out)
	}

	alerts := func(rule string) (raised, cleared int) {
		t.Helper()
		out := mustCLI(t, bin, "query", "--server", srv.url, "--token-file", tokFile, "--kind", "alert", "--json")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var m struct {
				Entry agentlog.Leaf `json:"entry"`
			}
			if json.Unmarshal([]byte(line), &m) != nil || m.Entry.Kind != agentlog.KindAlert {
				continue
			}
			switch m.Entry.Action {
			case "alert." + rule:
				raised++
			case "alert." + rule + ".cleared":
				cleared++
			}
		}
		return raised, cleared
	}
	waitAlerts := func(rule string, raised, cleared int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%s raised %d, cleared %d", rule, raised, cleared), func() bool {
			r, c := alerts(rule)
			if r > raised || c > cleared {
				t.Fatalf("%s raised %d times, cleared %d, want %d and %d", rule, r, c, raised, cleared)
			}
			return r == raised && c == cleared
		})
	}

	// sequence_gap: seq 4 is skipped, once.
	appendSeq(5)
	waitAlerts("sequence_gap", 1, 0)

	// The witness dies after cosigning, and the log signs a checkpoint it
	// will never cosign; then NTP stops answering: the clock loses sync
	// and signing is refused (--require-ntp) once the tree grows. Each
	// episode is raised once.
	wp.kill()
	size = appendSeq(6)
	waitFor(t, "a checkpoint the witness cannot cosign", func() bool {
		h, err := healthz(srv.url)
		cp, _ := h["checkpoint"].(map[string]any)
		n, _ := cp["size"].(float64)
		return err == nil && uint64(n) >= size
	})
	ntp.SetSilent(true)
	ntp2.SetSilent(true)
	waitFor(t, "the clock to lose NTP", func() bool { return !clockSynced(srv.url) })
	appendSeq(7)
	waitAlerts("ntp_unsynced", 1, 0)
	waitAlerts("checkpoint_stalled", 1, 0)
	waitAlerts("witness_quorum_lost", 1, 0)
	// The published checkpoint is still the last cosigned one: witnessed,
	// but no longer kept current.
	c = controls()
	if got := strings.Join(failing(c), ","); got != "checkpoint_verified,ntp_synchronized,alerts_open" {
		t.Fatalf("failing controls %s, want checkpoint_verified,ntp_synchronized,alerts_open\n%+v", got, c.Controls)
	}
	rules := map[string]int{}
	for _, r := range c.Alerts.ByRule {
		rules[r.Rule] = r.Count
	}
	if fmt.Sprint(rules) != "map[checkpoint_stalled:1 ntp_unsynced:1 sequence_gap:1 witness_quorum_lost:1]" || len(c.Alerts.Health) != 3 || c.Alerts.Open != 4 {
		t.Fatalf("alerts %+v", c.Alerts)
	}
	if _, _, code := cli(t, bin, "controls", "--server", srv.url, "--token-file", tokFile, "--fail"); code != 1 {
		t.Fatalf("controls --fail with failing controls: exit %d, want 1", code)
	}
	// NTP answers again: its two episodes end, once.
	ntp.SetSilent(false)
	ntp2.SetSilent(false)
	waitAlerts("ntp_unsynced", 1, 1)
	waitAlerts("checkpoint_stalled", 1, 1)

	// The witness's episode survives a SIGKILL and restart of the log.
	srv.kill()
	srv = startServer(t, bin, args...)
	c = controls()
	if len(c.Alerts.Health) != 1 || c.Alerts.Health[0].Rule != "witness_quorum_lost" {
		t.Fatalf("after the restart: open episodes %+v", c.Alerts.Health)
	}
	waitFor(t, "the witnesses to lag after the restart", func() bool {
		h, err := healthz(srv.url)
		w, _ := h["witnesses"].(map[string]any)
		return err == nil && w["lagging"] == true
	})
	// While the witness is still down, another episode starts and ends
	// after the restart, an NTP server lying by an hour: the health checks
	// ran, with the witness's condition bad, for longer than
	// --health-alert-after, so a log that had lost the episode would have
	// raised it again by then.
	ntp2.SetOffset(time.Hour)
	waitAlerts("ntp_unsynced", 2, 1)
	ntp2.SetOffset(0)
	waitAlerts("ntp_unsynced", 2, 2)
	waitAlerts("witness_quorum_lost", 1, 0)
	// The witness returns: the episode ends, once.
	startWitnessProc(t, wbin, wargs...)
	waitAlerts("witness_quorum_lost", 1, 1)
	waitAlerts("sequence_gap", 1, 0)
}

// TestServeRefusesShortHealthAfter: with witnesses, a --health-alert-after
// no longer than --witness-lag-tolerance would end a dead witness's episode
// right after a restart; serve refuses it, and so non-positive values,
// before it creates anything.
func TestServeRefusesShortHealthAfter(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy")
	if err := os.WriteFile(pol, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	for _, args := range [][]string{
		{"--witness-policy", pol, "--health-alert-after", "10s"},
		{"--witness-policy", pol, "--health-alert-after", "3s", "--witness-lag-tolerance", "5s"},
		{"--witness-lag-tolerance", "0s"},
		{"--approval-max-age", "-1h"},
	} {
		err := runServe(append([]string{"--data", data}, args...), io.Discard, io.Discard)
		var ue cmdline.UsageError
		if !errors.As(err, &ue) {
			t.Errorf("serve %v: %v, want a usage error", args, err)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Fatalf("serve %v left %s behind", args, data)
		}
	}
}

// TestServeRefusesBadInputFirst: a bad --witness-policy (unreadable,
// malformed, or listing logs on a first start, which creates a key it
// cannot list), a bad --listen address and out-of-range numbers stop serve
// with an error before it creates anything (it created the data directory
// and the log's keys before reading the policy, and took a negative
// --session-ttl or a --max-batch of 0 for their defaults).
func TestServeRefusesBadInputFirst(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad-policy", "garbage\n")
	_, vkey, err := note.GenerateKey(rand.Reader, "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	other := write("other-policy", "log "+vkey+"\nquorum none\n")
	data := filepath.Join(dir, "data")
	for _, c := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"--witness-policy", bad}, false, "unknown keyword"},
		{[]string{"--witness-policy", filepath.Join(dir, "missing")}, false, "no such file"},
		{[]string{"--witness-policy", other}, false, "first start"},
		{[]string{"--listen", "127.0.0.1:99999"}, true, "--listen"},
		{[]string{"--session-ttl", "-1s"}, true, "--session-ttl"},
		{[]string{"--session-max-ttl", "0s"}, true, "--session-max-ttl"},
		{[]string{"--session-ttl", "13h"}, true, "--session-max-ttl (12h0m0s)"},
		{[]string{"--max-batch", "0"}, true, "--max-batch"},
		{[]string{"--max-pending", "-1"}, true, "--max-pending"},
		{[]string{"--tile-cache", "-1"}, true, "--tile-cache"},
		{[]string{"--mirror", "s3://bucket/log", "--replicated-wait", "0s"}, true, "--replicated-wait 0s: want 1s to 10m0s"},
		{[]string{"--mirror", "s3://bucket/log", "--replicated-wait", "11m"}, true, "--replicated-wait"},
		{[]string{"--shutdown-timeout", "0s"}, true, "--shutdown-timeout"},
		{[]string{"--health-alert-after", "-1m"}, true, "--health-alert-after"},
		{[]string{"--origin", "bad origin"}, true, "--origin"},
		{[]string{"--debug-listen", "0.0.0.0:0"}, true, "loopback"},
		{[]string{"--debug-listen", "192.0.2.1:6060"}, true, "loopback"},
	} {
		err := runServe(append([]string{"--data", data, "--listen", "127.0.0.1:0"}, c.args...), io.Discard, io.Discard)
		var ue cmdline.UsageError
		if err == nil || c.usage != errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %v: %v, want an error with %q (a usage error: %v)", c.args, err, c.want, c.usage)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Fatalf("serve %v left %s behind", c.args, data)
		}
	}
}
