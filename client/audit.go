package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/witness/policy"
)

// Kinds of audit findings.
const (
	FindingTree      = "tree"          // the entries do not hash to the verified checkpoint
	FindingTile      = "tile"          // a hash tile disagrees with the entries
	FindingEntry     = "entry"         // an entry is not a well-formed leaf
	FindingTime      = "time"          // an entry's time is earlier than its predecessor's
	FindingSeqGap    = "seq-gap"       // a session's sequence numbers skip records
	FindingSeqDup    = "seq-duplicate" // a session's sequence number appears twice
	FindingSignature = "signature"     // an agent signature does not verify
	FindingAgentKey  = "agent-key"     // the agent's registered key could not be fetched
)

// A Finding is one problem an audit found.
type Finding struct {
	Kind    string  `json:"kind"`
	Index   *uint64 `json:"index,omitempty"` // the entry concerned, if one is
	Agent   string  `json:"agent,omitempty"`
	Session string  `json:"session,omitempty"`
	// Missing lists a session's missing sequence numbers (seq-gap), as
	// ranges "a-b" or single numbers.
	Missing []string `json:"missing,omitempty"`
	Message string   `json:"message"`
}

func (f Finding) String() string {
	var b strings.Builder
	if f.Index != nil {
		fmt.Fprintf(&b, "entry %d: ", *f.Index)
	}
	b.WriteString(f.Kind)
	b.WriteString(": ")
	b.WriteString(f.Message)
	return b.String()
}

func atIndex(i uint64) *uint64 { return &i }

// AuditState is an audit's progress, enough to resume it: the range and
// checkpoint being audited, the compact range of the verified prefix
// [0, Next) and what the entries seen so far leave open. It is plain JSON.
type AuditState struct {
	Checkpoint []byte                 `json:"checkpoint"` // the signed checkpoint audited against
	Start      uint64                 `json:"start"`      // first entry of the audited range
	End        uint64                 `json:"end"`        // end of the audited range (exclusive)
	Next       uint64                 `json:"next"`       // entries [Start, Next) are done
	Range      [][]byte               `json:"range"`      // compact range of [0, Next): hashes of its perfect subtrees, left to right
	LastTime   time.Time              `json:"last_time"`  // time of entry Next-1
	Sessions   map[string]*sessionSeq `json:"sessions"`
	Findings   []Finding              `json:"findings"`
	Signed     uint64                 `json:"signed"`           // entries whose agent signature verified
	Alerts     map[string]uint64      `json:"alerts,omitempty"` // alerts recorded in the range, by action (alert.<rule>)
}

// AuditConfig says what to audit.
type AuditConfig struct {
	// Policy decides which checkpoint to trust (log key and witness quorum).
	Policy *policy.Policy
	// Start and End bound the entries audited, [Start, End); End 0 means
	// the checkpoint's size. From and To, if not zero, choose the range by
	// entry time instead: entries with From <= time < To.
	Start, End uint64
	From, To   time.Time
	// State resumes an interrupted audit; Save, if set, is called with the
	// progress every SaveEvery bundles (default 64) and at the end.
	State     *AuditState
	Save      func(*AuditState) error
	SaveEvery int
	// Progress, if set, is called after each entry bundle with the entries
	// done and the total of the range.
	Progress func(done, total uint64)
	// Concurrency is how many bundles are fetched at once (default 16).
	Concurrency int
}

// AuditReport is an audit's result.
type AuditReport struct {
	Origin    string   `json:"origin"`
	TreeSize  uint64   `json:"tree_size"`
	Root      []byte   `json:"root"`
	Cosigners []string `json:"cosigners"`
	Start     uint64   `json:"start"`
	End       uint64   `json:"end"`
	Entries   uint64   `json:"entries"` // entries checked by this run
	Signed    uint64   `json:"signed"`  // signatures verified, over the whole range
	// Alerts counts the alerts the log's anomaly rules recorded in the
	// range, by action (alert.<rule>; docs/anomaly.md).
	Alerts     map[string]uint64 `json:"alerts,omitempty"`
	Duration   time.Duration     `json:"duration_ns"` // of this run
	PerSecond  float64           `json:"entries_per_second"`
	Findings   []Finding         `json:"findings"`
	Checkpoint string            `json:"checkpoint"`
}

// OK reports whether the audit found nothing.
func (r *AuditReport) OK() bool { return len(r.Findings) == 0 }

var rfcHasher = rfc6962.DefaultHasher

// Audit fetches the entries of a range and the log's hash tiles, recomputes
// the tree from the entries and checks that they hash into a checkpoint
// that satisfies the policy; it also checks that entry times never go back,
// that each session's sequence numbers have no gaps or repeats, and that
// every agent signature verifies with the agent's registered key. Every
// problem becomes a Finding; an error means the audit could not finish.
// Entry bundles and agent keys need an auditor or admin credential.
func (c *Client) Audit(ctx context.Context, cfg AuditConfig) (*AuditReport, error) {
	began := time.Now()
	if cfg.Policy == nil {
		return nil, errors.New("audit: a policy is required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = 64
	}
	st := cfg.State
	raw := []byte(nil)
	if st != nil {
		raw = st.Checkpoint
	} else {
		var err error
		if raw, err = c.Checkpoint(ctx); err != nil {
			return nil, err
		}
	}
	v, err := cfg.Policy.Verify(raw)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	a := &auditor{c: c, cfg: cfg, size: v.Size, keys: map[string]*agentKey{}}
	if st == nil {
		st = &AuditState{Checkpoint: raw, Start: cfg.Start, End: cfg.End, Sessions: map[string]*sessionSeq{}}
		if !cfg.From.IsZero() || !cfg.To.IsZero() {
			if st.Start, err = a.searchTime(ctx, cfg.From); err != nil {
				return nil, err
			}
			st.End = v.Size
			if !cfg.To.IsZero() {
				if st.End, err = a.searchTime(ctx, cfg.To); err != nil {
					return nil, err
				}
			}
		}
		if st.End == 0 {
			st.End = v.Size
		}
		if st.End > v.Size || st.Start > st.End {
			return nil, fmt.Errorf("audit: range [%d, %d) is not within the checkpoint's tree of size %d", st.Start, st.End, v.Size)
		}
		st.Next = st.Start
		left, err := a.leftRange(ctx, st.Start)
		if err != nil {
			return nil, err
		}
		st.Range = left
	} else if st.Sessions == nil {
		st.Sessions = map[string]*sessionSeq{}
	}
	if st.Next < st.Start || st.Next > st.End || st.End > v.Size {
		return nil, fmt.Errorf("audit: state is inconsistent (start %d, next %d, end %d, tree size %d)", st.Start, st.Next, st.End, v.Size)
	}
	cr, err := rangeFactory.NewRange(0, st.Next, st.Range)
	if err != nil {
		return nil, fmt.Errorf("audit: state's compact range: %w", err)
	}
	a.st, a.cr = st, cr
	first := st.Next
	if err := a.run(ctx); err != nil {
		return nil, err
	}
	a.finish(ctx, v.Root)
	if cfg.Save != nil {
		if err := cfg.Save(st); err != nil {
			return nil, err
		}
	}
	r := &AuditReport{
		Origin: v.Origin, TreeSize: v.Size, Root: v.Root, Start: st.Start, End: st.End,
		Entries: st.End - first, Signed: st.Signed, Alerts: st.Alerts, Duration: time.Since(began),
		Findings: a.findings(), Checkpoint: string(raw),
	}
	for _, w := range v.Cosigners {
		r.Cosigners = append(r.Cosigners, w.Name)
	}
	if s := r.Duration.Seconds(); s > 0 {
		r.PerSecond = float64(r.Entries) / s
	}
	return r, nil
}

var rangeFactory = compact.RangeFactory{Hash: rfcHasher.HashChildren}

type auditor struct {
	c    *Client
	cfg  AuditConfig
	size uint64 // of the checkpoint
	st   *AuditState
	cr   *compact.Range

	keyMu sync.Mutex
	keys  map[string]*agentKey
	// final holds the findings made at the end (sessions still open, the
	// root), which are not part of the saved state.
	final []Finding
}

type agentKey struct {
	once sync.Once
	pub  ed25519.PublicKey
	err  error
}

// key fetches an agent's registered key, once per agent.
func (a *auditor) key(ctx context.Context, agent string) (ed25519.PublicKey, error) {
	a.keyMu.Lock()
	k, ok := a.keys[agent]
	if !ok {
		k = &agentKey{}
		a.keys[agent] = k
	}
	a.keyMu.Unlock()
	k.once.Do(func() {
		info, err := a.c.Agent(ctx, agent)
		switch {
		case err != nil:
			k.err = err
		case len(info.PublicKey) != ed25519.PublicKeySize:
			k.err = fmt.Errorf("the server gave a %d-byte key", len(info.PublicKey))
		default:
			k.pub = info.PublicKey
		}
	})
	return k.pub, k.err
}

// leftRange returns the compact range of [0, n), read from the log's hash
// tiles. They are not trusted: the root computed from them and the audited
// entries must still match the checkpoint.
func (a *auditor) leftRange(ctx context.Context, n uint64) ([][]byte, error) {
	tiles := map[[2]uint64][]byte{}
	var out [][]byte
	for _, id := range compact.RangeNodes(0, n, nil) {
		l := uint64(id.Level) / tileHeight
		r := uint(id.Level) % tileHeight
		first := id.Index << r // first hash of the subtree at tile level l
		ti := first / tileWidth
		t, ok := tiles[[2]uint64{l, ti}]
		if !ok {
			w := agentlog.TileWidthAt(l, ti, a.size)
			var err error
			if t, err = a.c.HashTile(ctx, l, ti, w); err != nil {
				return nil, fmt.Errorf("audit: reading the tree left of entry %d: %w", n, err)
			}
			tiles[[2]uint64{l, ti}] = t
		}
		off := first % tileWidth
		sub := rangeFactory.NewEmptyRange(0)
		for i := off; i < off+1<<r; i++ {
			if int(i+1)*hashSize > len(t) {
				return nil, fmt.Errorf("audit: hash tile %d/%d is too short", l, ti)
			}
			if err := sub.Append(t[i*hashSize:(i+1)*hashSize], nil); err != nil {
				return nil, err
			}
		}
		root, err := sub.GetRootHash(nil)
		if err != nil {
			return nil, err
		}
		out = append(out, root)
	}
	return out, nil
}

// searchTime returns the first index whose entry time is not before t,
// by binary search (entry times never decrease; if they do the audit
// reports it).
func (a *auditor) searchTime(ctx context.Context, t time.Time) (uint64, error) {
	var cached struct {
		k      uint64
		leaves [][]byte
	}
	cached.k = ^uint64(0)
	var ferr error
	i := sort.Search(int(a.size), func(i int) bool {
		if ferr != nil {
			return true
		}
		k := uint64(i) / tileWidth
		if k != cached.k {
			b, err := a.c.EntryBundle(ctx, k, agentlog.TileWidthAt(0, k, a.size))
			if err != nil {
				ferr = err
				return true
			}
			cached.k, cached.leaves = k, b
		}
		var l struct{ Time time.Time }
		if err := json.Unmarshal(cached.leaves[uint64(i)%tileWidth], &l); err != nil {
			ferr = fmt.Errorf("entry %d is not a leaf: %w", i, err)
			return true
		}
		return !l.Time.Before(t)
	})
	if ferr != nil {
		return 0, fmt.Errorf("audit: finding the entries at %s: %w", t.Format(time.RFC3339), ferr)
	}
	return uint64(i), nil
}

// bundle is one entry bundle, checked as far as it can be on its own.
type bundle struct {
	k        uint64 // bundle index
	hashes   [][]byte
	leaves   []*agentlog.Leaf // nil where the entry is malformed
	findings []Finding
	signed   uint64
	err      error
}

// fetch reads bundle k and the matching level-0 hash tile and checks the
// entries of [lo, hi) that need no context: format, tile agreement,
// signatures.
func (a *auditor) fetch(ctx context.Context, k, lo, hi uint64) *bundle {
	b := &bundle{k: k}
	w := agentlog.TileWidthAt(0, k, a.size)
	entries, err := a.c.EntryBundle(ctx, k, w)
	if err != nil {
		b.err = err
		return b
	}
	tile, err := a.c.HashTile(ctx, 0, k, w)
	if err != nil {
		b.err = err
		return b
	}
	base := k * tileWidth
	b.hashes = make([][]byte, len(entries))
	b.leaves = make([]*agentlog.Leaf, len(entries))
	for j, e := range entries {
		i := base + uint64(j)
		h := rfcHasher.HashLeaf(e)
		b.hashes[j] = h
		if i < lo || i >= hi {
			continue
		}
		if !bytes.Equal(h, tile[j*hashSize:(j+1)*hashSize]) {
			b.findings = append(b.findings, Finding{Kind: FindingTile, Index: atIndex(i),
				Message: fmt.Sprintf("the entry hashes to %x but hash tile %s says %x", h, tilePath(0, k, w, false), tile[j*hashSize:(j+1)*hashSize])})
		}
		var l agentlog.Leaf
		if err := json.Unmarshal(e, &l); err != nil || l.Time.IsZero() || l.Kind == "" {
			b.findings = append(b.findings, Finding{Kind: FindingEntry, Index: atIndex(i), Message: "the entry is not a leaf with a time and a kind"})
			continue
		}
		b.leaves[j] = &l
		if len(l.Sig) == 0 {
			continue
		}
		pub, err := a.key(ctx, l.Agent)
		if err != nil {
			// Reported once per agent, at the first entry needing the key.
			continue
		}
		if l.VerifySignature(pub) == nil {
			b.signed++
		} else {
			b.findings = append(b.findings, Finding{Kind: FindingSignature, Index: atIndex(i), Agent: l.Agent, Session: l.Session,
				Message: fmt.Sprintf("the agent signature does not verify with the registered key of %q", l.Agent)})
		}
	}
	return b
}

// run audits [Next, End) bundle by bundle: bundles are fetched and checked
// concurrently, then folded into the compact range in order.
func (a *auditor) run(ctx context.Context) error {
	st := a.st
	if st.Next == st.End {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	firstK, lastK := st.Next/tileWidth, (st.End-1)/tileWidth
	lo, hi := st.Next, st.End
	ordered := make(chan chan *bundle, a.cfg.Concurrency)
	go func() {
		defer close(ordered)
		for k := firstK; k <= lastK; k++ {
			ch := make(chan *bundle, 1)
			select {
			case ordered <- ch:
			case <-ctx.Done():
				return
			}
			go func() { ch <- a.fetch(ctx, k, lo, hi) }()
		}
	}()
	saved := 0
	total := st.End - st.Start
	badKey := map[string]bool{}
	for ch := range ordered {
		// A select with a fetched bundle and a cancelled ctx picks either:
		// check first, so a cancelled audit stops at the next bundle
		// instead of sometimes running to its end (and its final checks,
		// which would fail on the cancelled ctx and report findings).
		if err := ctx.Err(); err != nil {
			return err
		}
		var b *bundle
		select {
		case b = <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if b.err != nil {
			return fmt.Errorf("audit: entry bundle %d: %w", b.k, b.err)
		}
		base := b.k * tileWidth
		lo, hi := max(st.Next, base), min(st.End, base+uint64(len(b.hashes)))
		if lo != st.Next || hi <= lo {
			return fmt.Errorf("audit: entry bundle %d does not continue at entry %d", b.k, st.Next)
		}
		for i := lo; i < hi; i++ {
			if err := a.cr.Append(b.hashes[i-base], nil); err != nil {
				return err
			}
			if l := b.leaves[i-base]; l != nil {
				a.leaf(ctx, i, l, badKey)
			}
		}
		st.Findings = append(st.Findings, b.findings...)
		st.Signed += b.signed
		st.Next = hi
		st.Range = a.cr.Hashes()
		if a.cfg.Progress != nil {
			a.cfg.Progress(st.Next-st.Start, total)
		}
		if saved++; a.cfg.Save != nil && saved%a.cfg.SaveEvery == 0 && st.Next < st.End {
			if err := a.cfg.Save(st); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if st.Next != st.End {
		return fmt.Errorf("audit: stopped at entry %d of %d", st.Next, st.End)
	}
	return nil
}

// leaf runs the checks that need the entries before it: time order,
// sequence numbers, and reports agents whose key is unavailable.
func (a *auditor) leaf(ctx context.Context, i uint64, l *agentlog.Leaf, badKey map[string]bool) {
	st := a.st
	if i > st.Start && l.Time.Before(st.LastTime) {
		st.Findings = append(st.Findings, Finding{Kind: FindingTime, Index: atIndex(i),
			Message: fmt.Sprintf("time %s is earlier than the previous entry's %s", l.Time.UTC().Format(time.RFC3339Nano), st.LastTime.UTC().Format(time.RFC3339Nano))})
	}
	if l.Time.After(st.LastTime) || i == st.Start {
		st.LastTime = l.Time
	}
	if l.Kind == "alert" {
		if st.Alerts == nil {
			st.Alerts = map[string]uint64{}
		}
		st.Alerts[l.Action]++
	}
	if len(l.Sig) > 0 && !badKey[l.Agent] {
		if _, err := a.key(ctx, l.Agent); err != nil {
			badKey[l.Agent] = true
			st.Findings = append(st.Findings, Finding{Kind: FindingAgentKey, Index: atIndex(i), Agent: l.Agent,
				Message: fmt.Sprintf("cannot check the signatures of %q: fetching its registered key: %v", l.Agent, err)})
		}
	}
	if l.Session == "" {
		return
	}
	switch {
	case l.Kind == "session" && l.Action == "session.opened":
		if _, ok := st.Sessions[l.Session]; !ok {
			st.Sessions[l.Session] = &sessionSeq{Agent: l.Agent, Opened: true, Low: 1, Next: 1, Last: i}
		}
	case l.Kind == "session" && l.Action == "session.closed":
		if s, ok := st.Sessions[l.Session]; ok {
			st.Findings = append(st.Findings, s.gaps(l.Session)...)
			delete(st.Sessions, l.Session)
		}
	case l.Seq != 0:
		s, ok := st.Sessions[l.Session]
		if !ok {
			s = &sessionSeq{Agent: l.Agent, Low: l.Seq, Next: l.Seq}
			st.Sessions[l.Session] = s
		}
		s.Last = i
		if !s.add(l.Seq) {
			st.Findings = append(st.Findings, Finding{Kind: FindingSeqDup, Index: atIndex(i), Agent: l.Agent, Session: l.Session,
				Message: fmt.Sprintf("sequence number %d of session %s appears again", l.Seq, l.Session)})
		}
	}
}

// finish checks the recomputed tree against the checkpoint and closes the
// sessions still open.
func (a *auditor) finish(ctx context.Context, root []byte) {
	st := a.st
	a.final = nil
	for id, s := range st.Sessions {
		a.final = append(a.final, s.gaps(id)...)
	}
	if st.End == 0 {
		return
	}
	got, err := a.cr.GetRootHash(nil)
	if err != nil {
		a.final = append(a.final, Finding{Kind: FindingTree, Message: fmt.Sprintf("computing the root: %v", err)})
		return
	}
	var what string
	if st.End == a.size {
		if !bytes.Equal(got, root) {
			what = fmt.Sprintf("the entries hash to root %x, the checkpoint of size %d says %x", got, a.size, root)
		}
	} else {
		p, err := a.c.ConsistencyProof(ctx, st.End, a.size)
		if err == nil {
			err = proof.VerifyConsistency(rfcHasher, st.End, a.size, p, got, root)
		}
		if err != nil {
			what = fmt.Sprintf("the entries hash to root %x at size %d, which is not proven consistent with the checkpoint of size %d: %v", got, st.End, a.size, err)
		}
	}
	if what != "" {
		if st.Start > 0 {
			what += fmt.Sprintf(" (the hashes left of entry %d came from the log's hash tiles)", st.Start)
		}
		a.final = append(a.final, Finding{Kind: FindingTree, Message: what})
	}
}

// findings returns every finding, ordered by entry then kind.
func (a *auditor) findings() []Finding {
	all := append(slices.Clone(a.st.Findings), a.final...)
	sort.SliceStable(all, func(i, j int) bool {
		ii, jj := ^uint64(0), ^uint64(0)
		if all[i].Index != nil {
			ii = *all[i].Index
		}
		if all[j].Index != nil {
			jj = *all[j].Index
		}
		if ii != jj {
			return ii < jj
		}
		if all[i].Kind != all[j].Kind {
			return all[i].Kind < all[j].Kind
		}
		return all[i].Session < all[j].Session
	})
	if all == nil {
		all = []Finding{}
	}
	return all
}
