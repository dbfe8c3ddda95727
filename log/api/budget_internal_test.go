package api

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestBudgetReturnsMemoryAfterEveryBurst: a burst that ends sooner than
// returnEvery after the previous return still has its memory returned,
// once returnEvery has passed, with no request to trigger it.
func TestBudgetReturnsMemoryAfterEveryBurst(t *testing.T) {
	b := newBudget(1<<30, 1<<30, prometheus.NewRegistry())
	b.mu.Lock()
	b.freed = time.Now().Add(-returnEvery + 100*time.Millisecond) // returned just before
	b.mu.Unlock()
	r, err := b.take("bot", returnAfter)
	if err != nil {
		t.Fatal(err)
	}
	r.release()
	b.mu.Lock()
	if b.high == 0 {
		b.mu.Unlock()
		t.Fatal("memory was returned within returnEvery of the previous return")
	}
	b.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		high, freed := b.high, b.freed
		b.mu.Unlock()
		if high == 0 {
			if time.Since(freed) > returnEvery {
				t.Fatalf("returned at %v, but the clock says it was not recorded", freed)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the put-off return never happened")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
