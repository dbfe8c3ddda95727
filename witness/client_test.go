package witness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/witness/policy"
)

// cluster is a test log with witnesses on loopback HTTP servers.
type cluster struct {
	t      *testing.T
	log    *testLog
	policy *policy.Policy
	urls   []string
	stores []*MemStore
}

// newCluster starts n of our witnesses for a new log and writes a policy
// needing k of them. extra are more witnesses (name, vkey, url) to add to
// the policy, counted in the group.
func newCluster(t *testing.T, n, k int, extra ...[3]string) *cluster {
	c := &cluster{t: t, log: newTestLog(t, "example.com/log")}
	var b strings.Builder
	fmt.Fprintf(&b, "log %s\n", c.log.VKey)
	var names []string
	for i := range n {
		st := &MemStore{}
		s, vkey := newTestSigner(t, fmt.Sprintf("w%d.example", i))
		w, err := New(Config{Signer: s, Logs: map[string][]note.Verifier{c.log.Origin: {c.log.Verifier()}}, Store: st})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(NewServer(ServerConfig{Witness: w}))
		t.Cleanup(srv.Close)
		c.urls = append(c.urls, srv.URL)
		c.stores = append(c.stores, st)
		name := fmt.Sprintf("W%d", i)
		names = append(names, name)
		fmt.Fprintf(&b, "witness %s %s %s\n", name, vkey, srv.URL)
	}
	for _, e := range extra {
		names = append(names, e[0])
		fmt.Fprintf(&b, "witness %s %s %s\n", e[0], e[1], e[2])
	}
	fmt.Fprintf(&b, "group Q %d %s\nquorum Q\n", k, strings.Join(names, " "))
	p, err := policy.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	c.policy = p
	return c
}

// signed returns the log's current checkpoint as the checkpoint package
// would give it to Publish.
func (c *cluster) signed() *checkpoint.Signed {
	raw := c.log.Checkpoint()
	size := c.log.Size()
	return &checkpoint.Signed{Origin: c.log.Origin, Size: size, Root: c.log.Root(size), Raw: raw}
}

// startClient runs a client publishing into a channel.
func (c *cluster) startClient(unwitnessed bool) (*Client, chan *checkpoint.Signed) {
	pub := make(chan *checkpoint.Signed, 100)
	cl, err := NewClient(ClientConfig{
		Policy: c.policy, Prover: c.log, PublishUnwitnessed: unwitnessed,
		Publish:    func(s *checkpoint.Signed) { pub <- s },
		MinBackoff: 1e6, MaxBackoff: 1e7, // 1ms to 10ms
	})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cl.Run(ctx) }()
	c.t.Cleanup(func() { cancel(); <-done })
	return cl, pub
}

// waitCosigned reads published checkpoints until one of size verifies
// against the policy.
func (c *cluster) waitCosigned(pub chan *checkpoint.Signed, size uint64) *policy.Verified {
	c.t.Helper()
	for s := range pub {
		v, err := c.policy.Verify(s.Raw)
		if errors.Is(err, policy.ErrQuorum) && s.Size <= size {
			continue // a log-signed checkpoint published before its quorum
		}
		if err != nil {
			c.t.Fatalf("published checkpoint does not verify: %v\n%s", err, s.Raw)
		}
		if v.Size > size {
			c.t.Fatalf("published size %d, beyond %d", v.Size, size)
		}
		if v.Size == size {
			return v
		}
	}
	return nil
}

// TestClientQuorum: three witnesses, quorum two, one of them down and one
// answering garbage; the log still gets cosigned checkpoints.
func TestClientQuorum(t *testing.T) {
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "— w9.example AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")
	}))
	defer garbage.Close()
	_, gkey := newTestSigner(t, "w9.example")
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	_, dkey := newTestSigner(t, "w8.example")
	c := newCluster(t, 2, 2, [3]string{"G", gkey, garbage.URL}, [3]string{"D", dkey, dead.URL})
	cl, pub := c.startClient(false)

	for round := range 5 {
		c.log.Grow(1+round*3, "a")
		cl.Submit(c.signed())
		v := c.waitCosigned(pub, c.log.Size())
		if len(v.Cosigners) != 2 || v.Cosigners[0].Name != "W0" || v.Cosigners[1].Name != "W1" {
			t.Fatalf("round %d: cosigners %v", round, v.Cosigners)
		}
	}
	st := cl.Status()
	if st.CosignedSize != c.log.Size() || st.Lagging {
		t.Errorf("status %+v", st)
	}
	for _, w := range st.Witnesses {
		if (w.Name == "W0" || w.Name == "W1") && (w.LastError != "" || w.Size != c.log.Size()) {
			t.Errorf("witness %+v", w)
		}
	}
}

// TestClientConflict: a client that does not know the witnesses' state
// (a restarted log) learns it from 409 and sends the right proof.
func TestClientConflict(t *testing.T) {
	c := newCluster(t, 3, 3)
	c.log.Grow(10, "a")
	cp10 := c.signed()
	for _, u := range c.urls {
		if code, _, out := post(t, u, body(0, nil, cp10.Raw)); code != 200 {
			t.Fatalf("%d %s", code, out)
		}
	}
	cl, pub := c.startClient(false)
	c.log.Grow(7, "a")
	cl.Submit(c.signed())
	v := c.waitCosigned(pub, 17)
	if len(v.Cosigners) != 3 {
		t.Fatalf("cosigners %v", v.Cosigners)
	}
	for _, w := range cl.Status().Witnesses {
		if w.Size != 17 {
			t.Errorf("witness %s at %d", w.Name, w.Size)
		}
	}
}

// TestClientPublishUnwitnessed: with PublishUnwitnessed, the log-signed
// checkpoint is published at once, then its cosigned form.
func TestClientPublishUnwitnessed(t *testing.T) {
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer slow.Close()
	defer close(block)
	_, skey := newTestSigner(t, "slow.example")
	c := newCluster(t, 1, 2, [3]string{"S", skey, slow.URL})
	cl, pub := c.startClient(true)
	c.log.Grow(3, "a")
	cl.Submit(c.signed()) // must not block on the slow witness
	first := <-pub
	if _, err := c.policy.Verify(first.Raw); !errors.Is(err, policy.ErrQuorum) || first.Size != 3 {
		t.Fatalf("first published: size %d, %v", first.Size, err)
	}
	none, err := policy.Parse([]byte("log " + c.log.VKey + "\nquorum none\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Verify(first.Raw); err != nil {
		t.Fatal(err)
	}
	if st := cl.Status(); st.CosignedSize != 0 || st.HoldBack {
		t.Errorf("status %+v", st)
	}
}

// TestClientHoldBack: by default nothing is published without a quorum.
func TestClientHoldBack(t *testing.T) {
	c := newCluster(t, 2, 2)
	cl, pub := c.startClient(false)
	c.log.Grow(3, "a")
	cl.Submit(c.signed())
	if v := c.waitCosigned(pub, 3); len(v.Cosigners) != 2 {
		t.Fatal(v.Cosigners)
	}
	// Every published checkpoint met the quorum (waitCosigned fails on any
	// other, past the size it waits for).
	c.log.Grow(3, "a")
	cl.Submit(c.signed())
	c.waitCosigned(pub, 6)
}

func TestAddSignatures(t *testing.T) {
	raw := []byte("o\n1\nAAAA\n\n— o abc=\n")
	got, err := AddSignatures(raw, []byte("— w1 def=\n— o abc=\n"), []byte("— w2 ghi=\n"))
	if err != nil || string(got) != "o\n1\nAAAA\n\n— o abc=\n— w1 def=\n— w2 ghi=\n" {
		t.Fatalf("%q %v", got, err)
	}
	for _, bad := range []string{"— w1 def=", "w1 def=\n", "— w1\n", "— w 1 x\n"} {
		if _, err := AddSignatures(raw, []byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, err := AddSignatures([]byte("no blank line\n"), nil); err == nil {
		t.Error("accepted a note without signatures")
	}
}
