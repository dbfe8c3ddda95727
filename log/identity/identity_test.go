package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
)

type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time { return time.Unix(0, c.ns.Load()) }

func openStore(t testing.TB, dir string, c *clock) (*alog.Log, *Store) {
	t.Helper()
	l, err := alog.Open(alog.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(l.DB(), l, Config{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return l, s
}

var admin = alog.Principal{ID: "admin", Role: RoleAdmin}

func newAgent(t *testing.T, s *Store, id string, approve bool) ed25519.PrivateKey {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := s.Register(context.Background(), admin, AgentSpec{ID: id, Owner: "o", PublicKey: pub}); err != nil {
		t.Fatal(err)
	}
	if approve {
		if _, err := s.Approve(context.Background(), alog.Principal{ID: "alice", Role: RoleApprover}, id); err != nil {
			t.Fatal(err)
		}
	}
	return priv
}

func open(s *Store, body []byte) (*agentlog.SessionInfo, error) {
	r, tm, sig, err := ParseOpenRequest(body)
	if err != nil {
		return nil, err
	}
	return s.OpenSession(context.Background(), r, tm, sig)
}

// TestPersistence reopens the store and checks agents, tokens, sessions,
// used nonces and idempotency results survive.
func TestPersistence(t *testing.T) {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	dir := t.TempDir()
	l, s := openStore(t, dir, c)
	key := newAgent(t, s, "bot", true)
	_, tok, err := s.CreateToken(context.Background(), admin, "carol", RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	req := client.SignSessionRequest("bot", "task", 0, c.now(), key)
	o, err := open(s, req)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(o.Credential)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.AppendIdempotent(context.Background(), p, "k", []byte("body"), alog.KindAction, []alog.Record{{Action: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	// No s.Close: the idempotency result was committed with the entry, so
	// it survives the store not being closed (a crash).
	l.Close()

	l, s = openStore(t, dir, c)
	defer l.Close()
	if p, err := s.Authenticate(o.Credential); err != nil || p.Agent != "bot" || p.Task != "task" {
		t.Fatalf("session after reopen: %+v %v", p, err)
	}
	if p, err := s.Authenticate(tok); err != nil || p.Role != RoleAuditor || p.ID != "carol" {
		t.Fatalf("token after reopen: %+v %v", p, err)
	}
	if _, err := open(s, req); !errors.Is(err, ErrDenied) || err.(*DeniedError).Reason != ReasonReplayed {
		t.Fatalf("replay after reopen: %v", err)
	}
	size := l.Size()
	res2, err := s.AppendIdempotent(context.Background(), p, "k", []byte("body"), alog.KindAction, []alog.Record{{Action: "a"}})
	if err != nil || res2[0].Index != res[0].Index {
		t.Fatalf("idempotent result after reopen: %v %v", res2, err)
	}
	if l.Size() != size {
		t.Fatal("idempotent append ran twice across a restart")
	}
	// The lifecycle is in the log, in order, naming who did what.
	var got []string
	for i := uint64(0); i < l.Size(); i++ {
		b, _ := l.Entry(i)
		lf, _ := agentlog.ParseLeaf(b)
		got = append(got, lf.Kind+" "+lf.Action+" by "+lf.Principal+" about "+lf.Agent)
	}
	want := []string{"agent agent.registered by admin about bot", "agent agent.approved by alice about bot", "token token.created by admin about ", "session session.opened by bot about bot", "action a by bot about bot"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestConcurrentReplay sends one signed request many times at once:
// exactly one opens a session.
func TestConcurrentReplay(t *testing.T) {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	l, s := openStore(t, t.TempDir(), c)
	defer l.Close()
	key := newAgent(t, s, "bot", true)
	req := client.SignSessionRequest("bot", "task", 0, c.now(), key)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := open(s, req); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, ErrDenied) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d sessions opened from one request", ok.Load())
	}
}

// TestIdempotentConcurrent runs the same key from many goroutines: the
// append runs once and all get its result; a failed attempt does not use
// the key up.
func TestIdempotentConcurrent(t *testing.T) {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	l, s := openStore(t, t.TempDir(), c)
	defer l.Close()
	p := alog.Principal{ID: "bot", Role: RoleAgent, Agent: "bot", Session: "0000000000000000", Task: "t"}
	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make([][]alog.Appended, 8)
	for i := range results {
		wg.Go(func() {
			<-start
			r, err := s.AppendIdempotent(context.Background(), p, "key", []byte("b"), alog.KindAction, []alog.Record{{Action: "a"}})
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		})
	}
	close(start)
	wg.Wait()
	if l.Size() != 1 {
		t.Fatalf("append ran %d times", l.Size())
	}
	for _, r := range results {
		if len(r) != 1 || r[0].Index != 0 {
			t.Fatalf("result %v", r)
		}
	}
	// A failed attempt does not use the key up.
	tooBig := []alog.Record{{Action: "a", Resource: strings.Repeat("x", alog.MaxLeafSize)}}
	if _, err := s.AppendIdempotent(context.Background(), p, "k2", []byte("b"), alog.KindAction, tooBig); !errors.Is(err, alog.ErrInvalid) {
		t.Fatalf("append of a leaf too large: %v, want ErrInvalid", err)
	}
	r, err := s.AppendIdempotent(context.Background(), p, "k2", []byte("b"), alog.KindAction, []alog.Record{{Action: "a"}})
	if err != nil || len(r) != 1 || r[0].Index != 1 {
		t.Fatalf("retry after failure: %v %v", r, err)
	}
}

func TestRegisterValidation(t *testing.T) {
	c := &clock{}
	l, s := openStore(t, t.TempDir(), c)
	defer l.Close()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, sp := range []AgentSpec{
		{ID: "", Owner: "o", PublicKey: pub},
		{ID: "-x", Owner: "o", PublicKey: pub},
		{ID: "a b", Owner: "o", PublicKey: pub},
		{ID: strings.Repeat("a", 65), Owner: "o", PublicKey: pub},
		{ID: "a", Owner: "", PublicKey: pub},
		{ID: "a", Owner: "o\n", PublicKey: pub},
		{ID: "a", Owner: "o", PublicKey: pub[:31]},
		{ID: "a", Owner: "o", PublicKey: pub, Scope: Scope{Hours: "25:00-26:00"}},
	} {
		if _, err := s.Register(context.Background(), admin, sp); !errors.Is(err, ErrInvalid) {
			t.Errorf("Register(%+v) = %v, want ErrInvalid", sp, err)
		}
	}
	if l.Size() != 0 {
		t.Fatal("invalid registrations were logged")
	}
	newAgent(t, s, "a", false)
	if _, err := s.Register(context.Background(), admin, AgentSpec{ID: "a", Owner: "o", PublicKey: pub}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := s.Approve(context.Background(), admin, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approve(context.Background(), admin, "a"); !errors.Is(err, ErrConflict) {
		t.Fatalf("approve twice: %v", err)
	}
	if _, _, err := s.CreateToken(context.Background(), admin, "x", RoleAgent); !errors.Is(err, ErrInvalid) {
		t.Fatalf("agent-role token: %v", err)
	}
	if _, _, err := s.CreateToken(context.Background(), admin, BootstrapAdmin, RoleAdmin); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token named like the bootstrap admin: %v", err)
	}
}

// TestSessionRequestRoundTrip checks that a session request signed by the
// client parses here and verifies over the bytes the server checks.
func TestSessionRequestRoundTrip(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	body := client.SignSessionRequest("bot-1", `task "x" é`, 90*time.Second, now, key)
	r, tm, sig, err := ParseOpenRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	if !tm.Equal(now) || r.TTL != 90 || !ed25519.Verify(key.Public().(ed25519.PublicKey), r.SignedBytes(), sig) {
		t.Fatalf("client's session request does not verify here: %+v", r)
	}
}

func TestScope(t *testing.T) {
	sc, err := ParseScope("actions=db.*, payments.refund; tools=sql;resources=customers/*;hours=09:00-17:00;tz=Europe/Paris;weekdays=mon-fri;rate=100/m")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(sc)
	if string(b) != `{"actions":["db.*","payments.refund"],"tools":["sql"],"resources":["customers/*"],"hours":"09:00-17:00","tz":"Europe/Paris","weekdays":"mon-fri","rate":"100/m"}` {
		t.Fatalf("scope %s", b)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	mon10 := time.Date(2026, 11, 30, 10, 0, 0, 0, paris)
	for _, tc := range []struct {
		action, tool, res string
		at                time.Time
		want              bool
	}{
		{"db.query", "sql", "customers/1", mon10, true},
		{"db.query", "", "", mon10, true},
		{"shell.exec", "sql", "customers/1", mon10, false},
		{"db.query", "bash", "customers/1", mon10, false},
		{"db.query", "sql", "orders/1", mon10, false},
		{"db.query", "sql", "customers/1", mon10.Add(8 * time.Hour), false},
		{"db.query", "sql", "customers/1", mon10.Add(5 * 24 * time.Hour), false}, // saturday
	} {
		if got := sc.Allows(tc.action, tc.tool, tc.res, tc.at); got != tc.want {
			t.Errorf("Allows(%s, %s, %s, %v) = %v", tc.action, tc.tool, tc.res, tc.at, got)
		}
	}
	for _, alt := range []string{
		`{"actions":["db.*","payments.refund"],"tools":["sql"],"resources":["customers/*"],"hours":"09:00-17:00","tz":"Europe/Paris","weekdays":"mon-fri","rate":"100/m"}`,
		"action=db.*,payments.refund;tool=sql;resource=customers/*;hours=09:00-17:00;tz=Europe/Paris;weekdays=mon-fri;rate=100/m",
	} {
		got, err := ParseScope(alt)
		if b2, _ := json.Marshal(got); err != nil || string(b2) != string(b) {
			t.Fatalf("ParseScope(%s) = %s, %v; want %s", alt, b2, err, b)
		}
	}
	night, _ := ParseScope("hours=22:00-06:00;weekdays=fri-mon")
	if !night.Allows("x", "", "", time.Date(2026, 11, 29, 23, 0, 0, 0, time.UTC)) || night.Allows("x", "", "", time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)) {
		t.Fatal("window across midnight")
	}
	for _, bad := range []string{"actions", "foo=bar", "hours=9-17", "hours=09:00-09:00", "tz=Mars/Base", "weekdays=mon-xyz", "rate=0/s", "rate=5/d", "actions=[", "actions=a;actions=b", "action=a;actions=b", "hours=+9:00-10:00", `{"actions":"x"}`, `{"bogus":1}`} {
		if _, err := ParseScope(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseScope(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"", "actions=db.*,x;tools=sql;resources=a/*;hours=09:00-17:00;tz=UTC;weekdays=mon-fri;rate=100/m", "hours=23:00-01:00", "weekdays=sun,sat", "actions=[", "rate=1/h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if err := sc.Validate(); err != nil {
			t.Fatalf("parsed scope does not validate: %v", err)
		}
		sc.Allows("a", "b", "c", time.Unix(0, 0))
		// The JSON form round-trips.
		b, _ := json.Marshal(sc)
		var back Scope
		if err := json.Unmarshal(b, &back); err != nil || back.Validate() != nil {
			t.Fatalf("scope JSON %s does not round-trip: %v", b, err)
		}
	})
}

func FuzzParseOpenRequest(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	f.Add(client.SignSessionRequest("bot", "task", time.Hour, time.Unix(1e9, 0), key))
	f.Add([]byte(`{"agent":"a","task":"t","time":"2026-01-01T00:00:00Z","nonce":"AAAAAAAAAAAAAAAAAAAAAA","sig":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, _, sig, err := ParseOpenRequest(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if !agentlog.ValidID(r.Agent) || len(sig) != ed25519.SignatureSize || strings.ContainsAny(r.Task, "\n\r") {
			t.Fatalf("accepted %+v", r)
		}
		// The signed bytes have exactly six lines.
		if n := strings.Count(string(r.SignedBytes()), "\n"); n != 6 {
			t.Fatalf("signed bytes have %d lines", n)
		}
	})
}

// FuzzAgentSpec feeds registration bodies through the HTTP layer's strict
// decoding and validation: never a panic, and what validates is usable.
func FuzzAgentSpec(f *testing.F) {
	f.Add([]byte(`{"id":"bot","owner":"o","public_key":"` + strings.Repeat("A", 43) + `=","scope":{"actions":["db.*"],"hours":"09:00-17:00"}}`))
	f.Add([]byte(`{"id":"bot","owner":"o","public_key":"AA=="}`))
	f.Add([]byte(`{"scope":{"rate":"1/s","weekdays":"sat-sun","tz":"UTC"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var sp AgentSpec
		if err := jsonv2.Unmarshal(b, &sp, jsonv2.RejectUnknownMembers(true)); err != nil {
			return
		}
		if err := sp.validate(); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if !agentlog.ValidID(sp.ID) || len(sp.PublicKey) != ed25519.PublicKeySize {
			t.Fatalf("accepted %+v", sp)
		}
	})
}

// BenchmarkAuthenticate measures the per-request cost sessions add to an
// append: parsing the credential, hashing its secret, one map lookup.
func BenchmarkAuthenticate(b *testing.B) {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	l, s := openStore(b, b.TempDir(), c)
	defer l.Close()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := s.Register(context.Background(), admin, AgentSpec{ID: "bot", Owner: "o", PublicKey: pub}); err != nil {
		b.Fatal(err)
	}
	s.Approve(context.Background(), admin, "bot")
	o, err := open(s, client.SignSessionRequest("bot", "t", 0, c.now(), key))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Authenticate(o.Credential); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestNamesUnique: a principal in the log is a token's name or an agent's
// id, so no two live tokens, no token and agent and no two agents share
// one, case-insensitively, and none is named like the bootstrap admin or
// the log; a revoked token's name can be given again, and nothing refused
// is logged.
func TestNamesUnique(t *testing.T) {
	l, s := openStore(t, t.TempDir(), &clock{})
	defer l.Close()
	ctx := context.Background()
	newAgent(t, s, "bot-1", false)
	tok, _, err := s.CreateToken(ctx, admin, "t-auditor", RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	before := l.Size()
	for _, name := range []string{"t-auditor", "T-AUDITOR", "Bot-1", "bot-1"} {
		if _, _, err := s.CreateToken(ctx, admin, name, RoleAuditor); !errors.Is(err, ErrExists) {
			t.Errorf("token named %q: %v, want ErrExists", name, err)
		}
	}
	for _, name := range []string{"ADMIN", "Admin", "agentlog", "AgentLog"} {
		if _, _, err := s.CreateToken(ctx, admin, name, RoleAuditor); !errors.Is(err, ErrInvalid) {
			t.Errorf("token named %q: %v, want ErrInvalid", name, err)
		}
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, id := range []string{"BOT-1", "t-Auditor", "admin", "Admin", "agentlog"} {
		if _, err := s.Register(ctx, admin, AgentSpec{ID: id, Owner: "o", PublicKey: pub}); !errors.Is(err, ErrExists) {
			t.Errorf("agent %q: %v, want ErrExists", id, err)
		}
	}
	if l.Size() != before {
		t.Fatalf("refused names wrote %d entries", l.Size()-before)
	}
	if _, err := s.RevokeToken(ctx, admin, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateToken(ctx, admin, "T-Auditor", RoleAuditor); err != nil {
		t.Fatalf("the name of a revoked token: %v", err)
	}
}

// TestTokenIDInLeaves: entries written under an operator token carry its
// id as well as its name, so two tokens that held the same name (one
// revoked before the other was created) stay distinguishable; the
// bootstrap admin's and agents' entries carry none.
func TestTokenIDInLeaves(t *testing.T) {
	l, s := openStore(t, t.TempDir(), &clock{})
	defer l.Close()
	ctx := context.Background()
	var ids []string
	for i, agent := range []string{"bot-1", "bot-2"} {
		tk, cred, err := s.CreateToken(ctx, admin, "alice", RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Authenticate(cred)
		if err != nil || p.TokenID != tk.ID || p.ID != "alice" {
			t.Fatalf("Authenticate = %+v, %v; want token id %s", p, err, tk.ID)
		}
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		if _, err := s.Register(ctx, p, AgentSpec{ID: agent, Owner: "o", PublicKey: pub}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Approve(ctx, p, agent); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := s.RevokeToken(ctx, p, tk.ID); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, tk.ID)
	}
	if ids[0] == ids[1] {
		t.Fatalf("two tokens with id %s", ids[0])
	}
	var got []string
	for i := uint64(0); i < l.Size(); i++ {
		b, _ := l.Entry(i)
		lf, err := agentlog.ParseLeaf(b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, lf.Action+" by "+lf.Principal+" token "+lf.TokenID)
	}
	want := []string{
		"token.created by admin token ",
		"agent.registered by alice token " + ids[0], "agent.approved by alice token " + ids[0], "token.revoked by alice token " + ids[0],
		"token.created by admin token ",
		"agent.registered by alice token " + ids[1], "agent.approved by alice token " + ids[1],
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestScopeLocalZoneIsUTC: a scope recorded naming "Local" (accepted
// before such scopes were refused) is checked in UTC, whatever the host's
// zone, so that every node and every replay finds the same.
func TestScopeLocalZoneIsUTC(t *testing.T) {
	if err := (Scope{Hours: "09:00-17:00", TZ: "Local"}).Validate(); err == nil {
		t.Fatal("a new scope naming Local was accepted")
	}
	old := time.Local
	t.Cleanup(func() { time.Local = old })
	time.Local = time.FixedZone("host", 10*3600) // 08:30 UTC is 18:30 here
	c := Scope{Hours: "09:00-17:00", TZ: "Local"}.Compile()
	at := time.Date(2026, 12, 2, 8, 30, 0, 0, time.UTC)
	if c.AllowsTime(at) || !c.AllowsTime(at.Add(time.Hour)) {
		t.Fatalf("08:30 UTC allowed %v, 09:30 UTC allowed %v: want the window in UTC", c.AllowsTime(at), c.AllowsTime(at.Add(time.Hour)))
	}
}
