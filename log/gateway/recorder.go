package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/agentlog/agentlog/client"
)

// Errors of recording, which the handlers map to answers.
var (
	// errRefused: the log refused the credential (401/403): the session
	// ended, or was never valid.
	errRefused = errors.New("the log refused the session credential")
	// errLogDown: the log could not be reached or answered 5xx; the call
	// fails closed unless its route is fail_open.
	errLogDown = errors.New("the log could not be written")
)

// Receipt names a durable entry: its index and RFC 6962 leaf hash.
type Receipt struct {
	Index    uint64
	LeafHash []byte
}

// recorder appends entries to the log with the session credential of the
// call they record. A call's entry is sent at once when fewer than
// maxInflight requests of its credential, and fewer than cap(slots)
// requests in all, are in flight: it waits for no batch window and for no
// other append, and the log's own group commit shares one commit among the
// requests it holds. Beyond those limits the next calls' entries queue,
// and all of them go in the credential's next request (group commit
// across calls), so a saturated log gets fewer, larger appends.
type recorder struct {
	log         string
	hc          *http.Client
	timeout     time.Duration
	maxBatch    int
	maxInflight int
	m           *metrics
	// slots holds a token for each append request in flight, of every
	// credential (MaxAppends).
	slots chan struct{}

	mu     sync.Mutex
	queues map[string]*queue // by credential
}

type queue struct {
	pending  []*pendingEntry
	inflight int // flush goroutines running
}

type pendingEntry struct {
	rec  []byte // one record, JSON
	done chan struct{}
	r    Receipt
	err  error
}

func newRecorder(log string, hc *http.Client, timeout time.Duration, maxBatch, maxInflight, maxAppends int, m *metrics) *recorder {
	return &recorder{log: log, hc: hc, timeout: timeout, maxBatch: maxBatch, maxInflight: maxInflight, m: m,
		slots: make(chan struct{}, max(maxAppends, maxInflight, 1)), queues: map[string]*queue{}}
}

// append makes rec durable in the log under cred and returns its receipt.
// If ctx ends first, append returns ctx's error; the entry may still be
// written.
func (r *recorder) append(ctx context.Context, cred string, rec []byte) (Receipt, error) {
	p := &pendingEntry{rec: rec, done: make(chan struct{})}
	r.mu.Lock()
	q := r.queues[cred]
	if q == nil {
		q = &queue{}
		r.queues[cred] = q
	}
	q.pending = append(q.pending, p)
	start := q.inflight < r.maxInflight
	if start {
		q.inflight++
	}
	r.mu.Unlock()
	if start {
		go r.flush(cred, q)
	}
	select {
	case <-p.done:
		return p.r, p.err
	case <-ctx.Done():
		return Receipt{}, fmt.Errorf("%w: %w", errLogDown, ctx.Err())
	}
}

// flush sends the queue's entries, a batch at a time, until it is empty;
// the last flush to stop retires the queue. It takes its batch only once
// it holds one of the slots, so entries queued while every slot is taken
// go out together.
func (r *recorder) flush(cred string, q *queue) {
	c, _ := client.New(r.log, client.WithToken(cred), client.WithHTTPClient(r.hc))
	for {
		r.slots <- struct{}{}
		r.mu.Lock()
		n := min(len(q.pending), r.maxBatch)
		if n == 0 {
			if q.inflight--; q.inflight == 0 {
				delete(r.queues, cred)
			}
			r.mu.Unlock()
			<-r.slots
			return
		}
		batch := q.pending[:n:n]
		q.pending = q.pending[n:]
		r.mu.Unlock()

		size := len(`{"entries":[]}`)
		for _, p := range batch {
			size += len(p.rec) + 1
		}
		body := make([]byte, 0, size)
		body = append(body, `{"entries":[`...)
		for i, p := range batch {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, p.rec...)
		}
		body = append(body, "]}"...)
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		t0 := time.Now()
		res, err := c.AppendRaw(ctx, body)
		cancel()
		<-r.slots
		r.m.appends.Observe(time.Since(t0).Seconds())
		r.m.batch.Observe(float64(len(batch)))
		if err == nil && len(res) != len(batch) {
			err = fmt.Errorf("%w: the log answered %d receipts for %d entries", errLogDown, len(res), len(batch))
		}
		err = classify(err)
		switch {
		case errors.Is(err, errRefused):
			r.m.appendErrs.WithLabelValues("refused").Inc()
		case err != nil:
			r.m.appendErrs.WithLabelValues("log_down").Inc()
		}
		for i, p := range batch {
			if err != nil {
				p.err = err
			} else {
				p.r = Receipt{Index: res[i].Index, LeafHash: res[i].LeafHash}
			}
			close(p.done)
		}
	}
}

// classify maps an append error to errRefused or errLogDown.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var he *client.HTTPError
	if errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden) {
		return fmt.Errorf("%w: %s", errRefused, he.Message)
	}
	if errors.Is(err, errLogDown) {
		return err
	}
	return fmt.Errorf("%w: %w", errLogDown, err)
}
