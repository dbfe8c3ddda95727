package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/witness/policy"
	"github.com/transparency-dev/merkle/proof"
)

// ErrInconsistent is wrapped by *InconsistencyError: two checkpoints signed
// by the log cannot both be views of one append-only tree. It is
// [checkpoint.ErrInconsistent].
var ErrInconsistent = checkpoint.ErrInconsistent

// An InconsistencyError is proof that a log forked or showed a split view:
// two checkpoints it signed that no single append-only tree explains. It is
// [checkpoint.InconsistentError] (Kind [checkpoint.KindFork] or
// [checkpoint.KindSplitView]), the one type for that evidence.
type InconsistencyError = checkpoint.InconsistentError

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	// Policy decides which checkpoints to trust; its witnesses with a URL
	// are asked for their view of the log.
	Policy *policy.Policy
	// Trusted is the last checkpoint trusted (verbatim), nil on first use:
	// then the first checkpoint that satisfies the policy is trusted.
	Trusted []byte
	// Save is called with each newly trusted checkpoint before Check
	// returns; an error from it fails the Check.
	Save func(raw []byte) error
	// HTTPClient fetches the witnesses' checkpoints (default: 30 s timeout).
	HTTPClient *http.Client
}

// A Monitor follows a log: each Check verifies the newest checkpoint
// against the policy, proves it consistent with the last one trusted, and
// compares it with what each witness cosigned (c2sp.org/tlog-witness
// monitoring endpoint GET <url>/<hex SHA-256 of origin>/checkpoint).
type Monitor struct {
	c          *Client
	cfg        MonitorConfig
	trusted    *policy.Verified
	trustedRaw []byte
}

// NewMonitor returns a Monitor of the log c talks to.
func (c *Client) NewMonitor(cfg MonitorConfig) (*Monitor, error) {
	if cfg.Policy == nil {
		return nil, errors.New("monitor: a policy is required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	m := &Monitor{c: c, cfg: cfg}
	if len(cfg.Trusted) > 0 {
		v, err := cfg.Policy.Verify(cfg.Trusted)
		if err != nil {
			return nil, fmt.Errorf("monitor: the trusted checkpoint no longer satisfies the policy: %w", err)
		}
		m.trusted, m.trustedRaw = v, cfg.Trusted
	}
	return m, nil
}

// Trusted returns the checkpoint trusted now, verbatim (nil before the
// first Check).
func (m *Monitor) Trusted() []byte { return m.trustedRaw }

// MonitorResult says what one Check saw.
type MonitorResult struct {
	Origin    string
	Size      uint64 // of the checkpoint trusted after the check
	Root      []byte
	Previous  uint64 // size trusted before the check
	First     bool   // no checkpoint was trusted before (trust on first use)
	Stale     bool   // the log served an older (consistent) checkpoint than the one trusted
	Witnesses []WitnessView
}

// WitnessView is what one witness's monitoring endpoint showed.
type WitnessView struct {
	Name   string
	Size   uint64 // 0 with Note set when nothing was compared
	Note   string // why the view was not compared, if it was not
	Agrees bool   // proven consistent with the trusted checkpoint
}

// Check runs one round. It returns an *InconsistencyError (wrapping
// ErrInconsistent) when the log forked or shows a witness a split view;
// other errors (network, a checkpoint the policy refuses, a missing proof)
// prove nothing and may be retried.
func (m *Monitor) Check(ctx context.Context) (*MonitorResult, error) {
	raw, err := m.c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	v, err := m.cfg.Policy.Verify(raw)
	if err != nil {
		return nil, fmt.Errorf("monitor: the log's checkpoint: %w", err)
	}
	res := &MonitorResult{Origin: v.Origin}
	switch {
	case m.trusted == nil:
		res.First = true
	case v.Origin != m.trusted.Origin:
		return nil, fmt.Errorf("monitor: the log's checkpoint is for origin %q, the trusted one for %q", v.Origin, m.trusted.Origin)
	default:
		res.Previous = m.trusted.Size
		if err := m.consistent(ctx, m.trusted, v, m.trustedRaw, raw, checkpoint.KindFork, m.c.base); err != nil {
			return nil, err
		}
		res.Stale = v.Size < m.trusted.Size
	}
	if m.trusted == nil || v.Size > m.trusted.Size {
		if m.cfg.Save != nil {
			if err := m.cfg.Save(raw); err != nil {
				return nil, fmt.Errorf("monitor: saving the trusted checkpoint: %w", err)
			}
		}
		m.trusted, m.trustedRaw = v, raw
	}
	res.Size, res.Root = m.trusted.Size, m.trusted.Root
	for _, w := range m.cfg.Policy.Witnesses {
		if w.URL == "" {
			continue
		}
		view, err := m.witnessView(ctx, w)
		if err != nil {
			return nil, err
		}
		res.Witnesses = append(res.Witnesses, view)
	}
	return res, nil
}

// consistent proves a and b (both verified) views of one tree. A proof
// that fails, or two roots for one size, is an *InconsistencyError; a
// proof the log does not give is a plain error.
func (m *Monitor) consistent(ctx context.Context, trusted, other *policy.Verified, trustedRaw, otherRaw []byte, kind, source string) error {
	bad := func(reason string) error {
		return &InconsistencyError{
			Kind: kind, Source: source,
			Trusted: trustedRaw, TrustedSize: trusted.Size, TrustedRoot: trusted.Root,
			Other: otherRaw, OtherSize: other.Size, OtherRoot: other.Root,
			Reason: reason,
		}
	}
	a, b := trusted, other
	if a.Size > b.Size {
		a, b = b, a
	}
	switch {
	case a.Size == b.Size:
		if !bytes.Equal(a.Root, b.Root) {
			return bad(fmt.Sprintf("two checkpoints of size %d with different roots", a.Size))
		}
		return nil
	case a.Size == 0:
		if empty := sha256.Sum256(nil); !bytes.Equal(a.Root, empty[:]) {
			return bad("a checkpoint of size 0 whose root is not the empty tree's")
		}
		return nil
	}
	p, err := m.c.ConsistencyProof(ctx, a.Size, b.Size)
	if err != nil {
		return fmt.Errorf("monitor: fetching the consistency proof from size %d to %d: %w", a.Size, b.Size, err)
	}
	if err := proof.VerifyConsistency(rfcHasher, a.Size, b.Size, p, a.Root, b.Root); err != nil {
		return bad(fmt.Sprintf("the log's consistency proof from size %d to %d does not verify: %v", a.Size, b.Size, err))
	}
	return nil
}

// maxWitnessAnswer caps a witness's monitoring answer.
const maxWitnessAnswer = 64 << 10

func (m *Monitor) witnessView(ctx context.Context, w *policy.Witness) (WitnessView, error) {
	view := WitnessView{Name: w.Name}
	url := strings.TrimSuffix(w.URL, "/") + "/" + policy.OriginHash(m.trusted.Origin) + "/checkpoint"
	source := fmt.Sprintf("witness %s (%s)", w.Name, url)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		view.Note = err.Error()
		return view, nil
	}
	resp, err := m.cfg.HTTPClient.Do(req)
	if err != nil {
		view.Note = err.Error()
		return view, nil
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxWitnessAnswer))
	if err != nil {
		view.Note = "reading the answer: " + err.Error()
		return view, nil
	}
	if resp.StatusCode != http.StatusOK {
		view.Note = fmt.Sprintf("the monitoring endpoint answered %d", resp.StatusCode)
		return view, nil
	}
	// One witness alone need not meet the quorum; what matters is that
	// the log signed it.
	v, err := m.cfg.Policy.Verify(raw)
	if v == nil || err != nil && !errors.Is(err, policy.ErrQuorum) {
		view.Note = fmt.Sprintf("not a checkpoint signed by the log: %v", err)
		return view, nil
	}
	if v.Origin != m.trusted.Origin {
		view.Note = fmt.Sprintf("a checkpoint for origin %q", v.Origin)
		return view, nil
	}
	view.Size = v.Size
	if err := m.consistent(ctx, m.trusted, v, m.trustedRaw, raw, checkpoint.KindSplitView, source); err != nil {
		var ie *InconsistencyError
		if errors.As(err, &ie) {
			return view, err
		}
		// The witness may be ahead of what the log publishes; compare
		// again next round.
		view.Note = err.Error()
		return view, nil
	}
	view.Agrees = true
	return view, nil
}
