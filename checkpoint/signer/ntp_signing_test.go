package signer

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint/checkpointtest"
	"github.com/agentlog/agentlog/checkpoint/clock"
)

// TestSigningDoesNotWaitForNTP checks that checkpoints are signed while a
// sync is stuck on a server that never answers (as with an unreachable NTP
// server or a resolver that never answers): neither Now nor the signing
// loop waits for the clock's network round trips.
func TestSigningDoesNotWaitForNTP(t *testing.T) {
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	asked := make(chan struct{})
	go func() { // read the query, never answer
		buf := make([]byte, 512)
		if _, _, err := silent.ReadFrom(buf); err == nil {
			close(asked)
		}
	}()
	clk := clock.New(clock.Config{Servers: []string{silent.LocalAddr().String()}, Timeout: 10 * time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	synced := make(chan error, 1)
	go func() { synced <- clk.Sync(ctx) }()
	<-asked // the sync is now waiting for an answer that will not come

	tree := checkpointtest.NewMemTree("a", 3)
	loop, err := New(Config{Keys: testKeys(t, nil), Source: tree, Store: &memStore{}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{3, 5} {
		tree.Add("b", size-int(tree.Size()))
		s, err := loop.SignNow()
		if err != nil || s.Size != uint64(size) {
			t.Fatalf("SignNow during a stuck sync: %v, %+v", err, s)
		}
	}
	select {
	case err := <-synced:
		t.Fatalf("the sync returned (%v) before the test ended it; the test proves nothing", err)
	default:
	}
	if st := loop.Status(); st.Signed != 2 || st.Refusing {
		t.Errorf("loop status %+v", st)
	}
	cancel()
	<-synced
}
