package api

import (
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the append byte budget (Config.InflightBytes and
// InflightBytesPerAgent).
const (
	DefaultInflightBytes         = 128 << 20
	DefaultInflightBytesPerAgent = 48 << 20
)

// budget bounds the append bytes in flight: the bodies of append requests
// from the moment they are authenticated until they are answered, which
// covers reading, decoding, the leaves built from them and their wait in
// the sequencer's queue. It is held per server and per agent (all of an
// agent's sessions together), so one agent cannot take the whole server's.
type budget struct {
	total, perAgent int64
	identityMax     int64 // for identityBudget: perAgent (tests lower it)

	mu      sync.Mutex
	used    int64
	byAgent map[string]int64
	high    int64       // most bytes in flight since memory was last returned
	freed   time.Time   // when memory was last returned
	later   *time.Timer // a return put off until returnEvery has passed
	freeing atomic.Bool

	inflight prometheus.GaugeFunc
	refused  prometheus.Counter
}

func newBudget(total, perAgent int64, reg prometheus.Registerer) *budget {
	b := &budget{total: total, perAgent: perAgent, identityMax: perAgent, byAgent: map[string]int64{}}
	b.inflight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "agentlog_append_inflight_bytes",
		Help: "Bytes of append requests being read, decoded or committed.",
	}, func() float64 { b.mu.Lock(); defer b.mu.Unlock(); return float64(b.used) })
	b.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "agentlog_append_budget_refused_total",
		Help: "Append requests refused with 503 because the byte budget (server or agent) was taken.",
	})
	reg.MustRegister(b.inflight, b.refused)
	return b
}

// reservation is what one request holds of the budget.
type reservation struct {
	b     *budget
	agent string
	n     int64
	done  bool
}

// take reserves n bytes for agent, or fails with errOverBudget. Call
// release on the reservation exactly once, when the request has ended.
func (b *budget) take(agent string, n int64) (*reservation, error) {
	r := &reservation{b: b, agent: agent}
	if err := r.grow(n); err != nil {
		return nil, err
	}
	return r, nil
}

// grow adds n bytes to the reservation, or fails with errOverBudget.
func (r *reservation) grow(n int64) error {
	b, agent := r.b, r.agent
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	limit := b.perAgent
	if agent == identityBudget {
		limit = b.identityMax
	}
	switch {
	case agent == identityBudget && b.byAgent[agent]+n > limit:
		err = fmt.Errorf("%w: %d bytes of identity and change requests are in flight, the server takes at most %d of them; retry later", errOverBudget, b.byAgent[agent], limit)
	case b.used+n > b.total:
		err = fmt.Errorf("%w: %d bytes of appends are in flight, the server takes at most %d; retry later", errOverBudget, b.used, b.total)
	case b.byAgent[agent]+n > limit:
		err = fmt.Errorf("%w: %d bytes of agent %q's appends are in flight, an agent may have at most %d; retry later", errOverBudget, b.byAgent[agent], agent, b.perAgent)
	}
	if err != nil {
		b.refused.Inc()
		return err
	}
	b.used += n
	b.byAgent[agent] += n
	b.high = max(b.high, b.used)
	r.n += n
	return nil
}

// release gives the reservation's bytes back.
func (r *reservation) release() {
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.done {
		return
	}
	r.done = true
	b.used -= r.n
	if b.byAgent[r.agent] -= r.n; b.byAgent[r.agent] == 0 {
		delete(b.byAgent, r.agent)
	}
	b.maybeReturnMemory()
}

// growStep is how much a reservation for a body of undeclared length
// (chunked) grows at a time as the body is read.
const growStep = 256 << 10

// reader reads a body of undeclared length, growing the reservation ahead
// of the bytes read; it fails with errOverBudget when the budget cannot.
type reader struct {
	r    io.Reader
	res  *reservation
	read int64
	step int64 // 0: growStep
}

func (rd *reader) Read(p []byte) (int, error) {
	step := rd.step
	if step == 0 {
		step = growStep
	}
	// At most a step at a time: a caller's buffer (io.ReadAll's doubles)
	// may be far larger than what is left to read.
	if int64(len(p)) > step {
		p = p[:step]
	}
	if rd.read+int64(len(p)) > rd.res.n {
		need := rd.read + int64(len(p)) - rd.res.n
		if err := rd.res.grow(max(need, step)); err != nil {
			return 0, err
		}
	}
	n, err := rd.r.Read(p)
	rd.read += int64(n)
	return n, err
}

// identityBudget is the budget's account for the bodies of identity,
// change and gateway requests (sessions, registrations, tokens, changes,
// a gateway's configuration): they share the server's budget with appends
// and together take at most an agent's share, so a flood of them (session
// requests need no credential) cannot take the memory appends need. It is
// no valid agent id.
const identityBudget = "\x00identity"

// takeBody reserves the budget for the body of an identity, change or
// gateway request, capped at limit: its declared length, or as it is read
// when the length is not declared. It returns nil and no error for a request
// without a body; past the budget, the body is read through (into no
// buffer) and the error is errOverBudget (503).
func (b *budget) takeBody(r *http.Request, limit int64) (*reservation, error) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	n := min(max(r.ContentLength, 0), limit)
	resv, err := b.take(identityBudget, n)
	if err != nil {
		io.Copy(io.Discard, r.Body)
		return nil, err
	}
	if r.ContentLength < 0 {
		r.Body = struct {
			io.Reader
			io.Closer
		}{&reader{r: r.Body, res: resv, step: limit}, r.Body}
	}
	return resv, nil
}

// returnAfter is how many bytes in flight make a burst after which memory
// is handed back to the operating system at once, and returnEvery how often
// at most: Go's runtime would otherwise return it over minutes.
const (
	returnAfter = 32 << 20
	returnEvery = 10 * time.Second
)

// maybeReturnMemory returns the heap's free memory to the operating system
// when a burst of large appends has ended (nothing in flight). A burst that
// ends sooner than returnEvery after the last return has its return put off
// until then, not dropped: no later request may come to trigger it. Called
// with b.mu held.
func (b *budget) maybeReturnMemory() {
	if b.used != 0 || b.high < returnAfter {
		return
	}
	if wait := returnEvery - time.Since(b.freed); wait > 0 {
		if b.later == nil {
			b.later = time.AfterFunc(wait, func() {
				b.mu.Lock()
				defer b.mu.Unlock()
				b.later = nil
				b.maybeReturnMemory()
			})
		}
		return
	}
	if !b.freeing.CompareAndSwap(false, true) {
		return
	}
	b.high, b.freed = 0, time.Now()
	go func() {
		defer b.freeing.Store(false)
		debug.FreeOSMemory()
	}()
}
