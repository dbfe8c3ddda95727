package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/query"
)

// sessionSearcher is the part of the log a retry across a failover is
// looked up in (*log.Log).
type sessionSearcher interface {
	Search(ctx context.Context, f *query.Filter, start, size uint64, limit int, emit func(index uint64, leaf []byte) error) (alog.SearchStats, error)
	Size() uint64
}

// replayedRetry answers an append in a session rebuilt from the log
// (Replay) whose idempotency key this node has never seen: a request
// retried after a failover, whose first attempt the old active may have
// committed (and the mirror copied) before its answer was lost. The
// sequence numbers tell: if the session's entries already hold every
// record of the request under its seq, byte for byte as this append would
// write them, the request is answered with those entries' receipts (ok)
// and nothing is appended. A seq the session already used for a
// different record is a conflict. Requests without sequence numbers, in
// sessions opened on this node, or numbered above what the log held when
// first looked at, are appended as usual (ok false).
func (s *Store) replayedRetry(ctx context.Context, p alog.Principal, recs []alog.Record) ([]alog.Appended, bool, error) {
	if len(recs) == 0 || recs[0].Seq == 0 || p.Session == "" {
		return nil, false, nil
	}
	s.mu.RLock()
	se := s.sessions[p.Session]
	high, known := s.seqHigh[p.Session]
	s.mu.RUnlock()
	lg, searchable := s.log.(sessionSearcher)
	if se == nil || !se.Replayed || !searchable {
		return nil, false, nil
	}
	lo, hi := recs[0].Seq, recs[0].Seq
	for _, r := range recs {
		lo, hi = min(lo, r.Seq), max(hi, r.Seq)
	}
	if known && lo > high {
		return nil, false, nil
	}
	// Read the session's actions once: the highest seq (cached, so later
	// appends are not looked up) and the entries of the request's seqs.
	size := lg.Size()
	type found struct {
		index uint64
		leaf  []byte
	}
	bySeq := map[uint64]found{}
	high = 0
	flt := &query.Filter{Matches: []query.Match{{Field: "session", Value: p.Session}}}
	_, err := lg.Search(ctx, flt, 0, size, 0, func(i uint64, leaf []byte) error {
		l, err := agentlog.ParseLeaf(leaf)
		if err != nil || l.Kind != alog.KindAction || l.Seq == 0 {
			return err
		}
		high = max(high, l.Seq)
		if l.Seq >= lo && l.Seq <= hi {
			if _, dup := bySeq[l.Seq]; !dup {
				bySeq[l.Seq] = found{i, bytes.Clone(leaf)}
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("looking up the session's earlier entries: %w", err)
	}
	s.mu.Lock()
	if len(s.seqHigh) > 1<<16 {
		clear(s.seqHigh) // bound memory; a miss reads the log again
	}
	s.seqHigh[p.Session] = high
	s.mu.Unlock()
	if len(bySeq) == 0 {
		return nil, false, nil
	}
	out := make([]alog.Appended, len(recs))
	for i := range recs {
		r := &recs[i]
		f, ok := bySeq[r.Seq]
		if !ok {
			return nil, false, fmt.Errorf("%w: the log already holds some of this request's sequence numbers in session %s but not seq %d: a retried request must be sent unchanged", ErrConflict, p.Session, r.Seq)
		}
		want, err := alog.LeafTail(alog.KindAction, p, r)
		if err != nil {
			return nil, false, err
		}
		if len(f.leaf) < agentlog.LeafHeadLen || !bytes.Equal(f.leaf[agentlog.LeafHeadLen:], want) {
			return nil, false, fmt.Errorf("%w: seq %d of session %s is already in the log (entry %d) with a different record", ErrConflict, r.Seq, p.Session, f.index)
		}
		t, err := agentlog.LeafTime(f.leaf)
		if err != nil {
			return nil, false, fmt.Errorf("entry %d: %w", f.index, err)
		}
		out[i] = alog.Appended{Index: f.index, LeafHash: sha256.Sum256(append([]byte{0}, f.leaf...)), Time: t}
	}
	return out, true, nil
}
