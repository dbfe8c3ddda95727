package client

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// sessionSeq tracks the sequence numbers seen in one session: every number
// in [Low, Next) was seen, Pending holds the others seen (sorted), and
// Opened says the session began inside the audited range, so numbering
// must start at 1.
type sessionSeq struct {
	Agent   string   `json:"agent"`
	Opened  bool     `json:"opened,omitempty"`
	Low     uint64   `json:"low"`
	Next    uint64   `json:"next"`
	Pending []uint64 `json:"pending,omitempty"`
	Last    uint64   `json:"last"` // index of the session's latest entry
}

// add records seq, reporting false if it was seen before.
func (s *sessionSeq) add(seq uint64) bool {
	if seq >= s.Low && seq < s.Next {
		return false
	}
	i, found := slices.BinarySearch(s.Pending, seq)
	if found {
		return false
	}
	switch {
	case seq == s.Next:
		s.Next++
		j, _ := slices.BinarySearch(s.Pending, s.Next)
		for j < len(s.Pending) && s.Pending[j] == s.Next {
			s.Pending = slices.Delete(s.Pending, j, j+1)
			s.Next++
		}
	case !s.Opened && seq+1 == s.Low:
		s.Low--
		for j := i - 1; j >= 0 && s.Pending[j] == s.Low-1; j-- {
			s.Pending = slices.Delete(s.Pending, j, j+1)
			s.Low--
		}
	default:
		s.Pending = slices.Insert(s.Pending, i, seq)
	}
	return true
}

// gaps reports the numbers missing between the lowest (1 if the session
// was opened in the audited range) and the highest seen.
func (s *sessionSeq) gaps(session string) []Finding {
	seen := func(n uint64) bool {
		if n >= s.Low && n < s.Next {
			return true
		}
		_, ok := slices.BinarySearch(s.Pending, n)
		return ok
	}
	lo, hi := s.Low, s.Next // [lo, hi) spans everything seen
	if len(s.Pending) > 0 {
		lo = min(lo, s.Pending[0])
		hi = max(hi, s.Pending[len(s.Pending)-1]+1)
	}
	if s.Opened {
		lo = 1
	}
	var missing []string
	var count uint64
	for n := lo; n < hi; {
		if seen(n) {
			// Skip the contiguous run quickly.
			if n >= s.Low && n < s.Next {
				n = s.Next
			} else {
				n++
			}
			continue
		}
		m := n
		for m+1 < hi && !seen(m+1) {
			m++
		}
		count += m - n + 1
		if len(missing) < 100 {
			if m == n {
				missing = append(missing, strconv.FormatUint(n, 10))
			} else {
				missing = append(missing, fmt.Sprintf("%d-%d", n, m))
			}
		}
		n = m + 1
	}
	if count == 0 {
		return nil
	}
	return []Finding{{Kind: FindingSeqGap, Index: atIndex(s.Last), Agent: s.Agent, Session: session, Missing: missing,
		Message: fmt.Sprintf("session %s of %q is missing %d record(s) by sequence number: %s", session, s.Agent, count, strings.Join(missing, ", "))}}
}
