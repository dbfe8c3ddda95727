package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/api"
	"github.com/agentlog/agentlog/log/identity"
	"github.com/agentlog/agentlog/witness/policy"
)

const auditAdmin = "audit-admin-secret"

// auditEnv is a real log with identities behind a real HTTP server, and a
// proxy in front of it that can rewrite answers.
type auditEnv struct {
	l       *alog.Log
	keys    *checkpoint.Keys
	srv     *api.Server
	direct  string // the server
	proxy   string // the proxy in front of it
	rewrite atomic.Pointer[func(path string, body []byte) []byte]
	policy  *policy.Policy
}

func newAuditEnv(t *testing.T) *auditEnv {
	t.Helper()
	e := &auditEnv{keys: newKeys(t, "audit.test/log")}
	l, err := alog.Open(alog.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e.l = l
	ids, err := identity.Open(l.DB(), l, identity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ids.AddStatic(auditAdmin, alog.Principal{ID: "admin", Role: api.RoleAdmin})
	e.srv = api.New(api.Config{Log: l, Identity: ids})
	hs := httptest.NewServer(e.srv)
	e.direct = hs.URL
	u, _ := url.Parse(hs.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		f := e.rewrite.Load()
		if f == nil || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		b = (*f)(resp.Request.URL.Path, b)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	ps := httptest.NewServer(rp)
	e.proxy = ps.URL
	t.Cleanup(func() { ps.Close(); hs.Close(); l.Close() })
	e.policy, err = policy.Parse([]byte("log " + e.keys.LogVKey + "\nquorum none\n"))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *auditEnv) setRewrite(f func(path string, body []byte) []byte) { e.rewrite.Store(&f) }

// publish signs and serves a checkpoint of the current tree.
func (e *auditEnv) publish(t *testing.T) *checkpoint.Signed {
	t.Helper()
	raw, err := checkpoint.SignAt(e.keys, e.l.Size(), e.l.Tree().Root(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := checkpoint.Open(raw, e.keys.LogVerifier, e.keys.TimeVerifier)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Publish(cp)
	return cp
}

// session provisions agent id (once) and opens a session, returning a
// client holding its credential, the session id and the agent key.
func (e *auditEnv) session(t *testing.T, id, task string) (*client.Client, *client.SessionInfo, ed25519.PrivateKey) {
	t.Helper()
	ctx := context.Background()
	admin, _ := client.New(e.direct, client.WithToken(auditAdmin))
	key, _ := agentlog.GenerateAgentKey(id)
	if _, err := admin.RegisterAgent(ctx, client.AgentRegistration{ID: id, Owner: "team", PublicKey: key.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApproveAgent(ctx, id); err != nil {
		t.Fatal(err)
	}
	a, err := client.NewAgent(e.direct, client.AgentConfig{ID: id, Key: key, Task: task, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := client.New(e.direct, client.WithToken(s.Credential))
	return c, s, key
}

type seqRec struct {
	Action string `json:"action"`
	Seq    uint64 `json:"seq,omitempty"`
	Sig    []byte `json:"sig,omitempty"`
}

// appendSeq appends records numbered seqs in one session, signed.
func appendSeq(t *testing.T, c *client.Client, s *client.SessionInfo, key ed25519.PrivateKey, seqs ...uint64) {
	t.Helper()
	recs := make([]seqRec, len(seqs))
	for i, n := range seqs {
		a := fmt.Sprintf("step.%d", n)
		recs[i] = seqRec{Action: a, Seq: n, Sig: ed25519.Sign(key, agentlog.RecordSignedBytes(s.Agent, s.Session, s.Task, &agentlog.Record{Action: a, Seq: n}))}
	}
	body, _ := json.Marshal(map[string]any{"entries": recs})
	if _, err := c.AppendRaw(context.Background(), body); err != nil {
		t.Fatal(err)
	}
}

// fill appends n plain records from the log itself.
func (e *auditEnv) fill(t *testing.T, n int) {
	t.Helper()
	recs := make([]alog.Record, n)
	for i := range recs {
		recs[i] = alog.Record{Action: "bulk", Resource: fmt.Sprintf("r/%d", i)}
	}
	if _, err := e.l.Append(context.Background(), alog.Principal{ID: "loader", Role: "admin"}, alog.KindAction, recs); err != nil {
		t.Fatal(err)
	}
}

func (e *auditEnv) audit(t *testing.T, base string, cfg client.AuditConfig) *client.AuditReport {
	t.Helper()
	c, err := client.New(base, client.WithToken(auditAdmin))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policy = e.policy
	r, err := c.Audit(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func kinds(r *client.AuditReport) map[string][]client.Finding {
	m := map[string][]client.Finding{}
	for _, f := range r.Findings {
		m[f.Kind] = append(m[f.Kind], f)
	}
	return m
}

// cleanLog builds a log of a few bundles with two signed sessions.
func cleanLog(t *testing.T) *auditEnv {
	e := newAuditEnv(t)
	c, s, k := e.session(t, "bot-a", "task-1")
	appendSeq(t, c, s, k, 1, 2, 3)
	e.fill(t, 300)
	appendSeq(t, c, s, k, 4, 5)
	c2, s2, k2 := e.session(t, "bot-b", "task-2")
	appendSeq(t, c2, s2, k2, 1, 2)
	e.fill(t, 400)
	appendSeq(t, c2, s2, k2, 3)
	e.publish(t)
	return e
}

func TestAuditCleanLog(t *testing.T) {
	e := cleanLog(t)
	r := e.audit(t, e.direct, client.AuditConfig{})
	if !r.OK() {
		t.Fatalf("findings on a clean log: %v", r.Findings)
	}
	if r.Start != 0 || r.End != e.l.Size() || r.Entries != e.l.Size() || r.Signed != 8 {
		t.Fatalf("report %+v", r)
	}
	// Sub-ranges, starting and ending inside bundles, check against the
	// tree through the hash tiles and a consistency proof.
	for _, rg := range [][2]uint64{{0, 1}, {1, 255}, {256, 512}, {300, 700}, {511, e.l.Size()}, {e.l.Size() - 1, e.l.Size()}} {
		r := e.audit(t, e.direct, client.AuditConfig{Start: rg[0], End: rg[1]})
		if !r.OK() || r.Start != rg[0] || r.End != rg[1] {
			t.Fatalf("range %v: %+v", rg, r)
		}
	}
}

func TestAuditTimeRange(t *testing.T) {
	e := cleanLog(t)
	mid, _ := e.l.Entry(500)
	lf, _ := agentlog.ParseLeaf(mid)
	r := e.audit(t, e.direct, client.AuditConfig{From: lf.Time, To: lf.Time.Add(time.Nanosecond)})
	if !r.OK() || r.Start > 500 || r.End <= 500 {
		t.Fatalf("time range around entry 500: %+v", r)
	}
	if r.Start > 0 {
		prev, _ := e.l.Entry(r.Start - 1)
		pl, _ := agentlog.ParseLeaf(prev)
		if !pl.Time.Before(lf.Time) {
			t.Fatalf("entry %d (before the range) has time %v, not before %v", r.Start-1, pl.Time, lf.Time)
		}
	}
}

func TestAuditDetectsTamperedEntry(t *testing.T) {
	e := cleanLog(t)
	e.setRewrite(func(path string, b []byte) []byte {
		if path == "/tile/entries/001" {
			return bytes.Replace(b, []byte(`"resource":"r/10"`), []byte(`"resource":"r/11"`), 1)
		}
		return b
	})
	r := e.audit(t, e.proxy, client.AuditConfig{})
	k := kinds(r)
	if len(k[client.FindingTree]) != 1 || len(k[client.FindingTile]) != 1 || *k[client.FindingTile][0].Index < 256 || *k[client.FindingTile][0].Index >= 512 {
		t.Fatalf("tampered entry not reported as expected: %v", r.Findings)
	}
	// A sub-range containing the entry catches it too; one that does not
	// passes.
	if r := e.audit(t, e.proxy, client.AuditConfig{Start: 300, End: 400}); r.OK() {
		t.Fatal("tampered sub-range passed")
	}
	if r := e.audit(t, e.proxy, client.AuditConfig{Start: 512}); !r.OK() {
		t.Fatalf("untouched range: %v", r.Findings)
	}
}

func TestAuditDetectsSequenceGap(t *testing.T) {
	e := newAuditEnv(t)
	c, s, k := e.session(t, "bot", "task")
	appendSeq(t, c, s, k, 1, 2)
	appendSeq(t, c, s, k, 4)
	e.fill(t, 10)
	appendSeq(t, c, s, k, 7, 8)
	e.publish(t)
	r := e.audit(t, e.direct, client.AuditConfig{})
	gaps := kinds(r)[client.FindingSeqGap]
	if len(r.Findings) != 1 || len(gaps) != 1 {
		t.Fatalf("findings %v", r.Findings)
	}
	if g := gaps[0]; g.Session != s.Session || g.Agent != "bot" || strings.Join(g.Missing, ",") != "3,5-6" {
		t.Fatalf("gap finding %+v", g)
	}
	t.Logf("%s", gaps[0])
}

func TestAuditDetectsBadSignature(t *testing.T) {
	e := newAuditEnv(t)
	c, s, k := e.session(t, "bot", "task")
	appendSeq(t, c, s, k, 1, 2)
	// The API refuses a bad signature, so write one as a compromised server
	// would, straight into the log: a record attributed to the agent that
	// the agent did not sign.
	forged := alog.Record{Action: "db.drop", Seq: 3, Sig: ed25519.Sign(k, []byte("something else"))}
	p := alog.Principal{ID: "bot", Role: api.RoleAgent, Agent: "bot", Session: s.Session, Task: s.Task}
	if _, err := e.l.Append(context.Background(), p, alog.KindAction, []alog.Record{forged}); err != nil {
		t.Fatal(err)
	}
	e.publish(t)
	r := e.audit(t, e.direct, client.AuditConfig{})
	sigs := kinds(r)[client.FindingSignature]
	if len(r.Findings) != 1 || len(sigs) != 1 || *sigs[0].Index != e.l.Size()-1 || r.Signed != 2 {
		t.Fatalf("findings %v, signed %d", r.Findings, r.Signed)
	}
	// Without a credential that may read agents, the keys cannot be had:
	// bundles are refused before that.
	anon, _ := client.New(e.direct)
	if _, err := anon.Audit(context.Background(), client.AuditConfig{Policy: e.policy}); err == nil {
		t.Fatal("audit without a credential succeeded")
	}
}

func TestAuditDetectsTimeGoingBack(t *testing.T) {
	e := cleanLog(t)
	// Back-date entry 260 by a day in the bundle served.
	e.setRewrite(func(path string, b []byte) []byte {
		if path != "/tile/entries/001" {
			return b
		}
		var out []byte
		for j := 0; len(b) > 0; j++ {
			n := int(b[0])<<8 | int(b[1])
			leaf := b[2 : 2+n]
			b = b[2+n:]
			if j == 4 {
				var m map[string]any
				json.Unmarshal(leaf, &m)
				tm, _ := time.Parse(time.RFC3339Nano, m["time"].(string))
				old := []byte(m["time"].(string))
				leaf = bytes.Replace(leaf, old, []byte(tm.Add(-24*time.Hour).UTC().Format("2006-01-02T15:04:05.000000000Z")), 1)
			}
			out = append(out, byte(len(leaf)>>8), byte(len(leaf)))
			out = append(out, leaf...)
		}
		return out
	})
	r := e.audit(t, e.proxy, client.AuditConfig{})
	tf := kinds(r)[client.FindingTime]
	if len(tf) != 1 || *tf[0].Index != 260 || len(kinds(r)[client.FindingTree]) != 1 {
		t.Fatalf("findings %v", r.Findings)
	}
}

func TestAuditResume(t *testing.T) {
	e := newAuditEnv(t)
	c, s, k := e.session(t, "bot", "task")
	appendSeq(t, c, s, k, 1, 2)
	e.fill(t, 600)
	appendSeq(t, c, s, k, 4) // 3 is missing
	e.fill(t, 600)
	appendSeq(t, c, s, k, 5)
	e.publish(t)
	full := e.audit(t, e.direct, client.AuditConfig{})
	if len(full.Findings) != 1 {
		t.Fatalf("findings %v", full.Findings)
	}

	cl, _ := client.New(e.direct, client.WithToken(auditAdmin))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var saved []byte
	saves := 0
	_, err := cl.Audit(ctx, client.AuditConfig{Policy: e.policy, SaveEvery: 1, Concurrency: 2, Save: func(st *client.AuditState) error {
		if saves++; saves == 3 {
			saved, _ = json.Marshal(st)
			cancel()
		}
		return nil
	}})
	if err == nil || saved == nil {
		t.Fatalf("interrupted audit: err %v, state saved %v", err, saved != nil)
	}
	// More entries arrive meanwhile: the resumed audit keeps to its checkpoint.
	e.fill(t, 10)
	e.publish(t)
	var st client.AuditState
	if err := json.Unmarshal(saved, &st); err != nil {
		t.Fatal(err)
	}
	if st.Next != 3*256 {
		t.Fatalf("state after 3 bundles at entry %d", st.Next)
	}
	next := st.Next
	r := e.audit(t, e.direct, client.AuditConfig{State: &st})
	if r.Entries != full.End-next || r.End != full.End || r.Signed != full.Signed {
		t.Fatalf("resumed %+v, full %+v", r, full)
	}
	a, _ := json.Marshal(r.Findings)
	b, _ := json.Marshal(full.Findings)
	if !bytes.Equal(a, b) {
		t.Fatalf("resumed findings %s, full %s", a, b)
	}
}

// TestTilePathsAgree keeps the client's tile paths in step with the tree's.
func TestTilePathsAgree(t *testing.T) {
	e := cleanLog(t)
	c, _ := client.New(e.direct, client.WithToken(auditAdmin))
	ctx := context.Background()
	size := e.l.Size()
	for k := uint64(0); k*256 < size; k++ {
		w := agentlog.TileWidthAt(0, k, size)
		tile, err := c.HashTile(ctx, 0, k, w)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := e.l.Tree().Tile(0, k, w)
		if !bytes.Equal(tile, want) {
			t.Fatalf("tile 0/%d differs", k)
		}
		b, err := c.EntryBundle(ctx, k, w)
		if err != nil || len(b) != w {
			t.Fatalf("bundle %d: %d entries, %v", k, len(b), err)
		}
	}
}
