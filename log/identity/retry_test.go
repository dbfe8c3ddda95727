package identity_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/identity"
)

// TestRetryAfterFailover: a request appended on one node (the entries
// then copied to a replica, which rebuilds the identities from them, as a
// standby does) and retried on the replica with the same idempotency key,
// unknown there, is answered with the original entries' receipts and
// appended nowhere; a different record under a seq the session already
// used is a conflict; the next numbers are appended.
func TestRetryAfterFailover(t *testing.T) {
	ctx := context.Background()
	l, src := openStore(t)
	cred, p := agentSession(t, src)
	batch := func(from uint64, action string) ([]alog.Record, []byte) {
		recs := []alog.Record{{Action: action, Resource: "r/1", Seq: from, Attributes: json.RawMessage(`{"n":1}`)}, {Action: action, Seq: from + 1}}
		body, _ := json.Marshal(agentlog.AppendRequest{Entries: recs})
		return recs, body
	}
	recs, body := batch(1, "read")
	first, err := src.AppendIdempotent(ctx, p, "key-1", body, alog.KindAction, recs)
	if err != nil {
		t.Fatal(err)
	}

	// The replica: the same entries, identities rebuilt from them.
	l2, dst := openStore(t)
	leaves, err := l.Entries(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Import(ctx, 0, leaves); err != nil {
		t.Fatal(err)
	}
	for _, leaf := range leaves {
		if err := dst.Replay(leaf); err != nil {
			t.Fatal(err)
		}
	}
	p2, err := dst.Authenticate(cred)
	if err != nil {
		t.Fatal(err)
	}
	size := l2.Size()
	again, err := dst.AppendIdempotent(ctx, p2, "key-1", body, alog.KindAction, recs)
	if err != nil {
		t.Fatalf("the retry on the replica: %v", err)
	}
	if l2.Size() != size {
		t.Fatalf("the retry was appended again: size %d, was %d", l2.Size(), size)
	}
	for i := range first {
		if again[i].Index != first[i].Index || again[i].LeafHash != first[i].LeafHash || !again[i].Time.Equal(first[i].Time) {
			t.Fatalf("receipt %d of the retry is %+v, want the original %+v", i, again[i], first[i])
		}
	}
	// A different record under a used seq is refused, and leaves nothing.
	other, otherBody := batch(1, "write")
	if _, err := dst.AppendIdempotent(ctx, p2, "key-2", otherBody, alog.KindAction, other); !errors.Is(err, identity.ErrConflict) {
		t.Fatalf("another record under seq 1: %v, want ErrConflict", err)
	}
	if l2.Size() != size {
		t.Fatal("the conflicting request was appended")
	}
	// The next numbers are new records.
	next, nextBody := batch(3, "read")
	res, err := dst.AppendIdempotent(ctx, p2, "key-3", nextBody, alog.KindAction, next)
	if err != nil || len(res) != 2 || res[0].Index != size {
		t.Fatalf("the next records: %+v, %v; want appended at %d", res, err, size)
	}
	// On the node that wrote them, sessions are not looked up: a new key
	// with a used seq is the agent's business (sequence_gap shows it).
	if _, err := src.AppendIdempotent(ctx, p, "key-4", otherBody, alog.KindAction, other); err != nil {
		t.Fatalf("a reused seq on the session's own node: %v", err)
	}
}

// TestRetryLookedUpBeforeTheEntryArrived: a retry that reaches the
// standby before the bucket gave it the first attempt's entries (it is
// refused there, the log being fenced) is still recognized once the
// entries arrive and the node takes over.
func TestRetryLookedUpBeforeTheEntryArrived(t *testing.T) {
	ctx := context.Background()
	la, src := openStore(t)
	lb, dst := openStore(t)
	cred, p := agentSession(t, src)
	copyNew := func() {
		t.Helper()
		leaves, err := la.Entries(lb.Size(), la.Size()-lb.Size())
		if err != nil {
			t.Fatal(err)
		}
		at := lb.Size()
		if err := lb.Import(ctx, at, leaves); err != nil {
			t.Fatal(err)
		}
		for _, leaf := range leaves {
			if err := dst.Replay(leaf); err != nil {
				t.Fatal(err)
			}
		}
	}
	rec := func(seq uint64) ([]alog.Record, []byte) {
		recs := []alog.Record{{Action: "a", Seq: seq}}
		body, _ := json.Marshal(agentlog.AppendRequest{Entries: recs})
		return recs, body
	}
	r1, b1 := rec(1)
	if _, err := src.AppendIdempotent(ctx, p, "k1", b1, alog.KindAction, r1); err != nil {
		t.Fatal(err)
	}
	copyNew()
	r2, b2 := rec(2)
	first, err := src.AppendIdempotent(ctx, p, "k2", b2, alog.KindAction, r2)
	if err != nil {
		t.Fatal(err)
	}
	// The retry reaches the standby before entry seq 2 does.
	pb, err := dst.Authenticate(cred)
	if err != nil {
		t.Fatal(err)
	}
	lb.Fence(errors.New("standby"))
	if _, err := dst.AppendIdempotent(ctx, pb, "k2", b2, alog.KindAction, r2); err == nil {
		t.Fatal("the fenced standby appended")
	}
	lb.Unfence()
	copyNew()
	size := lb.Size()
	again, err := dst.AppendIdempotent(ctx, pb, "k2", b2, alog.KindAction, r2)
	if err != nil || again[0].Index != first[0].Index || lb.Size() != size {
		t.Fatalf("the retry after the entry arrived: %+v %v (size %d, was %d); want the receipt of entry %d", again, err, lb.Size(), size, first[0].Index)
	}
}

// openStore opens a log and its identity store in a new directory.
func openStore(t *testing.T) (*alog.Log, *identity.Store) {
	t.Helper()
	l, err := alog.Open(alog.Config{Dir: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s, err := identity.Open(l.DB(), l, identity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return l, s
}

// agentSession registers and approves agent "bot" in s and opens a
// session, returning its credential and principal.
func agentSession(t *testing.T, s *identity.Store) (string, alog.Principal) {
	t.Helper()
	ctx := context.Background()
	admin := alog.Principal{ID: "admin", Role: identity.RoleAdmin}
	pub, priv, _ := ed25519.GenerateKey(nil)
	if _, err := s.Register(ctx, admin, identity.AgentSpec{ID: "bot", Owner: "team", PublicKey: pub}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approve(ctx, admin, "bot"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	req := agentlog.NewSessionRequest("bot", "task", 0, now, priv)
	sess, err := s.OpenSession(ctx, req, now, ed25519.Sign(priv, req.SignedBytes()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(sess.Credential)
	if err != nil {
		t.Fatal(err)
	}
	return sess.Credential, p
}
