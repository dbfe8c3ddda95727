package identity_test

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/identity"
)

// TestReplayRebuildsFromTheLog drives a store through every lifecycle
// event, then replays the log's entries into a second store on another
// database: agents, tokens and sessions authenticate there as on the
// first, with revocations and closes applied.
func TestReplayRebuildsFromTheLog(t *testing.T) {
	ctx := context.Background()
	l, err := alog.Open(alog.Config{Dir: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	src, err := identity.Open(l.DB(), l, identity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	admin := alog.Principal{ID: "admin", Role: identity.RoleAdmin}
	pub, priv, _ := ed25519.GenerateKey(nil)
	open := func(s *identity.Store, id string, key ed25519.PrivateKey, task string) *agentlog.SessionInfo {
		t.Helper()
		now := time.Now()
		req := agentlog.NewSessionRequest(id, task, 0, now, key)
		sig := ed25519.Sign(key, req.SignedBytes())
		o, err := s.OpenSession(ctx, req, now, sig)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	for _, id := range []string{"bot-1", "bot-2"} {
		if _, err := src.Register(ctx, admin, identity.AgentSpec{ID: id, Owner: "team", PublicKey: pub}); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Approve(ctx, admin, id); err != nil {
			t.Fatal(err)
		}
	}
	kept := open(src, "bot-1", priv, "kept")
	closed := open(src, "bot-1", priv, "closed")
	revokedAgent := open(src, "bot-2", priv, "of-a-revoked-agent")
	if _, err := src.EndSession(ctx, admin, closed.Session); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Revoke(ctx, admin, "bot-2"); err != nil {
		t.Fatal(err)
	}
	_, auditorCred, err := src.CreateToken(ctx, admin, "alice", identity.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	rt, revokedCred, err := src.CreateToken(ctx, admin, "bob", identity.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.RevokeToken(ctx, admin, rt.ID); err != nil {
		t.Fatal(err)
	}

	l2, err := alog.Open(alog.Config{Dir: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	dst, err := identity.Open(l2.DB(), l2, identity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ForEachEntry(ctx, 0, l.Size(), func(_ uint64, leaf []byte) error { return dst.Replay(leaf) }); err != nil {
		t.Fatal(err)
	}
	check := func(s *identity.Store) {
		t.Helper()
		if p, err := s.Authenticate(kept.Credential); err != nil || p.Agent != "bot-1" || p.Task != "kept" {
			t.Fatalf("open session: %+v, %v", p, err)
		}
		for name, cred := range map[string]string{"closed session": closed.Credential, "session of a revoked agent": revokedAgent.Credential, "revoked token": revokedCred} {
			if _, err := s.Authenticate(cred); err == nil {
				t.Fatalf("%s authenticates", name)
			}
		}
		if p, err := s.Authenticate(auditorCred); err != nil || p.Role != identity.RoleAuditor || p.ID != "alice" {
			t.Fatalf("auditor token: %+v, %v", p, err)
		}
		if a, err := s.Agent("bot-2"); err != nil || a.Status != identity.StatusRevoked {
			t.Fatalf("bot-2: %+v, %v", a, err)
		}
	}
	check(src)
	check(dst)
	// And it persists: a reopened store has the same state.
	again, err := identity.Open(l2.DB(), l2, identity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	check(again)
	// The rebuilt agent opens new sessions on the replica.
	open(dst, "bot-1", priv, "after")
}
