package log_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	alog "github.com/agentlog/agentlog/log"
)

// TestIdempotentRetryWaitsForAck: an idempotent append whose AckGate
// fails (replicated durability: the bucket not reached) is committed but
// not acknowledged, and a retry with its key is answered only once the
// gate passes, with the same entries: never earlier from the key's stored
// result, and never by appending them again. The same holds for a retry
// after a restart, which finds the result in the database.
func TestIdempotentRetryWaitsForAck(t *testing.T) {
	dir := t.TempDir()
	l, ids := openWithIdentity(t, alog.Config{Dir: dir})
	var open atomic.Bool // the gate passes
	errGate := errors.New("the bucket is unreachable")
	gate := func(context.Context, uint64) error {
		if open.Load() {
			return nil
		}
		return errGate
	}
	l.SetAckGate(gate)
	p := alog.Principal{ID: "bot-1", Role: "agent", Agent: "bot-1", Session: "0123456789abcdef"}
	recs := []alog.Record{{Action: "gated"}}
	body := []byte(`{"entries":[{"action":"gated"}]}`)
	ctx := context.Background()
	for attempt := range 2 {
		_, err := ids.AppendIdempotent(ctx, p, "key-1", body, alog.KindAction, recs)
		var na *alog.NotAcknowledgedError
		if !errors.Is(err, alog.ErrNotAcknowledged) || !errors.Is(err, errGate) || !errors.As(err, &na) || len(na.Entries) != 1 || na.Entries[0].Index != 0 {
			t.Fatalf("attempt %d with the gate shut: %v, want ErrNotAcknowledged for entry 0", attempt, err)
		}
	}
	if l.Size() != 1 {
		t.Fatalf("the log holds %d entries after two attempts, want 1", l.Size())
	}
	ids.Close()
	l.Close()

	// After a restart the key's result comes from the database.
	l, ids = openWithIdentity(t, alog.Config{Dir: dir})
	l.SetAckGate(gate)
	if _, err := ids.AppendIdempotent(ctx, p, "key-1", body, alog.KindAction, recs); !errors.Is(err, alog.ErrNotAcknowledged) {
		t.Fatalf("retry after a restart with the gate shut: %v, want ErrNotAcknowledged", err)
	}
	open.Store(true)
	res, err := ids.AppendIdempotent(ctx, p, "key-1", body, alog.KindAction, recs)
	if err != nil || len(res) != 1 || res[0].Index != 0 {
		t.Fatalf("retry with the gate open: %+v %v, want entry 0", res, err)
	}
	if l.Size() != 1 {
		t.Fatalf("the log holds %d entries, want 1", l.Size())
	}
}
