package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/witness/policy"
)

// Prover gives the consistency proofs of the log's tree; the tree package's
// Tree satisfies it.
type Prover interface {
	// ConsistencyProof returns the RFC 6962 consistency proof from the tree
	// of size old to the tree of size size, for 0 < old <= size.
	ConsistencyProof(old, size uint64) ([][]byte, error)
}

// Defaults of [ClientConfig].
const (
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = time.Minute
	DefaultTimeout      = 10 * time.Second
	DefaultLagTolerance = 10 * time.Second
)

// ClientConfig configures a [Client].
type ClientConfig struct {
	// Policy lists the witnesses (those with a URL are contacted) and the
	// quorum a checkpoint needs before it is published as cosigned.
	Policy *policy.Policy
	Prover Prover
	// Publish is called with each checkpoint to serve: the newest checkpoint
	// that met the quorum, its Raw carrying the witnesses' cosignatures after
	// the log's signatures; and, if PublishUnwitnessed, each new log-signed
	// checkpoint as soon as it is submitted. Calls are serialized and never
	// go back to a smaller tree; Publish must not block.
	Publish func(*checkpoint.Signed)
	// PublishUnwitnessed chooses what is served while the newest checkpoint
	// lacks its quorum: false holds it back (the last cosigned checkpoint
	// stays published, so readers only see witnessed tree heads, at the cost
	// of freshness when witnesses are down); true publishes it log-signed at
	// once and replaces it with its cosigned form when the quorum is met.
	PublishUnwitnessed bool
	HTTPClient         *http.Client          // default: a client with a DefaultTimeout timeout
	MinBackoff         time.Duration         // first retry delay after a failure; default 1s
	MaxBackoff         time.Duration         // longest retry delay; default 1m
	LagTolerance       time.Duration         // Status.Lagging after this long without quorum; default 10s
	Registerer         prometheus.Registerer // may be nil
	Logger             *slog.Logger          // nil discards
}

// A Client pushes the log's checkpoints to the witnesses of a policy
// (c2sp.org/tlog-witness), collects their cosignatures and publishes each
// checkpoint once the quorum has cosigned it.
//
// Each witness has its own goroutine, so a slow or dead witness delays no
// other and never blocks [Client.Submit]: it always sends the newest
// checkpoint, with a consistency proof from the size the witness holds,
// learnt from a 409 answer when unknown, and retries failures with
// exponential backoff. Cosignatures are verified before they are kept.
type Client struct {
	cfg     ClientConfig
	log     *slog.Logger
	workers []*worker

	mu            sync.Mutex
	latest        *pending            // newest checkpoint submitted
	pend          map[string]*pending // by checkpoint text, newest few
	cosigned      *checkpoint.Signed  // newest checkpoint that met the quorum, with cosignatures
	published     *checkpoint.Signed  // last passed to Publish
	lagSince      time.Time           // when the newest checkpoint stopped being the cosigned one
	publishMu     sync.Mutex          // serializes Publish calls
	mSizeLatest   prometheus.Gauge
	mSizeCosigned prometheus.Gauge
	mRequests     *prometheus.CounterVec
	mWitnessSize  *prometheus.GaugeVec
}

type pending struct {
	cp   *checkpoint.Signed
	text string
	sigs map[*policy.Witness][]byte // verified cosignature lines
}

type worker struct {
	c    *Client
	w    *policy.Witness
	url  string
	wake chan struct{}

	mu       sync.Mutex
	size     uint64 // size the witness holds, as far as we know
	done     string // text of the last checkpoint it cosigned
	lastErr  string
	failures int
}

// NewClient returns a Client; call Run to start pushing.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Policy == nil || cfg.Prover == nil || cfg.Publish == nil {
		return nil, errors.New("witness: NewClient needs a Policy, a Prover and Publish")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultTimeout}
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.LagTolerance <= 0 {
		cfg.LagTolerance = DefaultLagTolerance
	}
	c := &Client{cfg: cfg, log: cfg.Logger, pend: map[string]*pending{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	var reachable []*policy.Witness
	for _, w := range cfg.Policy.Witnesses {
		if w.URL == "" {
			continue
		}
		reachable = append(reachable, w)
		c.workers = append(c.workers, &worker{c: c, w: w, url: strings.TrimSuffix(w.URL, "/") + "/add-checkpoint", wake: make(chan struct{}, 1)})
	}
	if !cfg.Policy.QuorumMet(reachable) {
		return nil, errors.New("witness: the policy's witnesses with a URL cannot meet its quorum; give each witness its submission URL")
	}
	c.mSizeLatest = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "agentlog_witnessing_latest_size", Help: "Tree size of the newest checkpoint submitted to the witnesses."})
	c.mSizeCosigned = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "agentlog_witnessing_quorum_size", Help: "Tree size of the newest checkpoint cosigned by a quorum of witnesses."})
	c.mRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentlog_witnessing_requests_total", Help: "add-checkpoint requests to each witness, by answer (HTTP status, or error)."},
		[]string{"witness", "code"})
	c.mWitnessSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "agentlog_witnessing_witness_size", Help: "Tree size of the newest checkpoint each witness cosigned."}, []string{"witness"})
	if r := cfg.Registerer; r != nil {
		hold := 1.0
		if cfg.PublishUnwitnessed {
			hold = 0
		}
		r.MustRegister(c.mSizeLatest, c.mSizeCosigned, c.mRequests, c.mWitnessSize,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "agentlog_witnessing_quorum_met", Help: "1 when the newest checkpoint is cosigned by a quorum of witnesses (or within the lag tolerance), 0 otherwise."},
				func() float64 {
					if c.Status().Lagging {
						return 0
					}
					return 1
				}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "agentlog_witnessing_hold_back", Help: "1 when checkpoints without a witness quorum are held back from /checkpoint, 0 when they are published log-signed."},
				func() float64 { return hold }))
	}
	return c, nil
}

// Submit hands the client a new signed checkpoint of the log. It never
// blocks on the witnesses. Checkpoints must be submitted in signing order.
func (c *Client) Submit(cp *checkpoint.Signed) {
	text := string(noteText(cp.Raw))
	c.mu.Lock()
	if c.latest != nil && c.latest.text == text {
		c.mu.Unlock()
		return
	}
	if c.lagSince.IsZero() {
		c.lagSince = time.Now() // cleared when the quorum cosigns the newest checkpoint
	}
	p := &pending{cp: cp, text: text, sigs: map[*policy.Witness][]byte{}}
	c.latest = p
	c.pend[text] = p
	c.prune()
	c.mu.Unlock()
	c.mSizeLatest.Set(float64(cp.Size))
	if c.cfg.Policy.Quorum == nil {
		c.tryPublish(p) // "quorum none": the log signature suffices
	} else if c.cfg.PublishUnwitnessed {
		c.publish(cp)
	}
	for _, w := range c.workers {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// prune keeps the pending checkpoints at least as large as the cosigned
// one, at most 16 of them. c.mu must be held.
func (c *Client) prune() {
	var floor uint64
	if c.cosigned != nil {
		floor = c.cosigned.Size
	}
	for k, p := range c.pend {
		if p != c.latest && (p.cp.Size < floor || len(c.pend) > 16 && p.cp.Size < c.latest.cp.Size) {
			delete(c.pend, k)
		}
	}
}

// publish passes cp to Publish unless a larger tree was published.
func (c *Client) publish(cp *checkpoint.Signed) {
	c.publishMu.Lock()
	defer c.publishMu.Unlock()
	if c.published != nil && cp.Size < c.published.Size {
		return
	}
	c.published = cp
	c.cfg.Publish(cp)
}

// record keeps a verified cosignature of w on p and publishes p if the
// quorum is met.
func (c *Client) record(p *pending, w *policy.Witness, line []byte) {
	c.mu.Lock()
	p.sigs[w] = line
	c.mu.Unlock()
	c.mWitnessSize.WithLabelValues(w.Name).Set(float64(p.cp.Size))
	c.tryPublish(p)
}

func (c *Client) tryPublish(p *pending) {
	c.mu.Lock()
	var ws []*policy.Witness
	for _, w := range c.cfg.Policy.Witnesses { // policy order, so the output is stable
		if p.sigs[w] != nil {
			ws = append(ws, w)
		}
	}
	if !c.cfg.Policy.QuorumMet(ws) || (c.cosigned != nil && p.cp.Size < c.cosigned.Size) {
		c.mu.Unlock()
		return
	}
	lines := make([][]byte, len(ws))
	for i, w := range ws {
		lines[i] = p.sigs[w]
	}
	raw, err := AddSignatures(p.cp.Raw, lines...)
	if err != nil {
		c.mu.Unlock()
		c.log.Error("merging cosignatures", "err", err)
		return
	}
	s := *p.cp
	s.Raw = raw
	c.cosigned = &s
	if c.latest == p {
		c.lagSince = time.Time{}
	}
	c.prune()
	c.mu.Unlock()
	c.mSizeCosigned.Set(float64(s.Size))
	c.publish(&s)
}

// Cosigned returns the newest checkpoint that met the quorum, with the
// cosignatures, or nil.
func (c *Client) Cosigned() *checkpoint.Signed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cosigned
}

// ClientStatus describes a Client for /healthz.
type ClientStatus struct {
	LatestSize   uint64 `json:"latest_size"`   // newest checkpoint submitted
	CosignedSize uint64 `json:"cosigned_size"` // newest checkpoint with a quorum of cosignatures
	// Lagging is true when the newest checkpoint has lacked a quorum for
	// longer than the lag tolerance (or none ever met it).
	Lagging     bool            `json:"lagging"`
	LagSeconds  float64         `json:"lag_seconds,omitempty"`
	HoldBack    bool            `json:"hold_back"` // checkpoints without quorum are not published
	Witnesses   []WitnessStatus `json:"witnesses"`
	QuorumCount int             `json:"cosigners_of_latest"`
}

// WitnessStatus is one witness's part of ClientStatus.
type WitnessStatus struct {
	Name      string `json:"name"`
	URL       string `json:"url"`
	Size      uint64 `json:"size"` // size the witness holds, as far as the log knows
	Failures  int    `json:"consecutive_failures"`
	LastError string `json:"last_error,omitempty"`
}

// Policy returns the witness policy the client was configured with.
func (c *Client) Policy() *policy.Policy { return c.cfg.Policy }

// Status returns the client's state.
func (c *Client) Status() ClientStatus {
	c.mu.Lock()
	st := ClientStatus{HoldBack: !c.cfg.PublishUnwitnessed}
	if c.latest != nil {
		st.LatestSize = c.latest.cp.Size
		st.QuorumCount = len(c.latest.sigs)
	}
	if c.cosigned != nil {
		st.CosignedSize = c.cosigned.Size
	}
	if !c.lagSince.IsZero() {
		lag := time.Since(c.lagSince)
		st.LagSeconds = lag.Seconds()
		st.Lagging = lag > c.cfg.LagTolerance
	}
	c.mu.Unlock()
	for _, w := range c.workers {
		w.mu.Lock()
		st.Witnesses = append(st.Witnesses, WitnessStatus{Name: w.w.Name, URL: w.w.URL, Size: w.size, Failures: w.failures, LastError: w.lastErr})
		w.mu.Unlock()
	}
	return st
}

// Run pushes checkpoints to the witnesses until ctx is done.
func (c *Client) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range c.workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	wg.Wait()
}

func (w *worker) run(ctx context.Context) {
	backoff := time.Duration(0)
	for {
		if backoff > 0 {
			t := time.NewTimer(backoff/2 + rand.N(backoff/2+1)) // jitter, so witnesses are not hit in lockstep
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		w.c.mu.Lock()
		p := w.c.latest
		w.c.mu.Unlock()
		w.mu.Lock()
		idle := p == nil || p.text == w.done
		w.mu.Unlock()
		if idle {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				continue
			}
		}
		err := w.push(ctx, p)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		if err != nil {
			if w.failures == 0 || w.lastErr != err.Error() {
				w.c.log.Warn("witness did not cosign", "witness", w.w.Name, "size", p.cp.Size, "err", err)
			}
			w.failures++
			w.lastErr = err.Error()
			backoff = min(w.c.cfg.MaxBackoff, w.c.cfg.MinBackoff<<min(w.failures-1, 20))
		} else {
			if w.failures > 0 {
				w.c.log.Info("witness cosigning again", "witness", w.w.Name, "size", p.cp.Size)
			}
			w.failures, w.lastErr, backoff = 0, "", 0
		}
		w.mu.Unlock()
	}
}

// push sends p to the witness, following up to two 409 answers with the
// size they report.
func (w *worker) push(ctx context.Context, p *pending) error {
	for range 3 {
		w.mu.Lock()
		old := w.size
		w.mu.Unlock()
		if old > p.cp.Size {
			// The witness holds a larger tree than our newest checkpoint:
			// wait for the log to catch up (or for an operator to look).
			return fmt.Errorf("the witness holds size %d, larger than the checkpoint of size %d", old, p.cp.Size)
		}
		var proof [][]byte
		if old > 0 && old < p.cp.Size {
			var err error
			if proof, err = w.c.cfg.Prover.ConsistencyProof(old, p.cp.Size); err != nil {
				return fmt.Errorf("consistency proof from %d to %d: %w", old, p.cp.Size, err)
			}
		}
		code, ctype, body, err := w.post(ctx, old, proof, p.cp.Raw)
		if err != nil {
			w.c.mRequests.WithLabelValues(w.w.Name, "error").Inc()
			return err
		}
		w.c.mRequests.WithLabelValues(w.w.Name, strconv.Itoa(code)).Inc()
		switch code {
		case http.StatusOK:
			line, err := w.verify(p, body)
			if err != nil {
				return err
			}
			w.mu.Lock()
			w.size, w.done = p.cp.Size, p.text
			w.mu.Unlock()
			w.c.record(p, w.w, line)
			return nil
		case http.StatusConflict:
			n, err := parseSize(strings.TrimSuffix(string(body), "\n"))
			if err != nil || !strings.HasPrefix(ctype, "text/x.tlog.size") || !strings.HasSuffix(string(body), "\n") {
				return fmt.Errorf("409 with a malformed body %q (Content-Type %q)", truncate(body), ctype)
			}
			w.mu.Lock()
			w.size = n
			w.mu.Unlock()
			continue
		default:
			return fmt.Errorf("answered %d: %s", code, truncate(bytes.TrimSpace(body)))
		}
	}
	return errors.New("the witness keeps answering 409")
}

func (w *worker) post(ctx context.Context, old uint64, proof [][]byte, raw []byte) (int, string, []byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(raw)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, &b)
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := w.c.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, "", nil, err
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body, nil
}

// verify returns the line of body holding a valid cosignature of p by the
// witness's key; other lines are ignored, as the spec requires.
func (w *worker) verify(p *pending, body []byte) ([]byte, error) {
	lines, err := SignatureLines(body)
	if err != nil {
		return nil, fmt.Errorf("the answer is not signature lines: %w", err)
	}
	v := w.w.Verifier
	for _, l := range lines {
		name, enc, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(l, "— "), "\n"), " ")
		sig, err := base64.StdEncoding.DecodeString(enc)
		if name != v.Name() || err != nil || len(sig) < 5 || uint32(sig[0])<<24|uint32(sig[1])<<16|uint32(sig[2])<<8|uint32(sig[3]) != v.KeyHash() {
			continue
		}
		if v.Verify([]byte(p.text), sig[4:]) {
			return []byte(l), nil
		}
	}
	return nil, fmt.Errorf("the answer has no valid cosignature by %s", v.Name())
}
