package client

import (
	"strings"
	"testing"
)

func TestSessionSeqGaps(t *testing.T) {
	for _, tc := range []struct {
		opened  bool
		seqs    []uint64
		missing string // "" for none
		dups    int
	}{
		{true, []uint64{1, 2, 3}, "", 0},
		{true, []uint64{2, 3}, "1", 0},
		{true, []uint64{1, 2, 4, 7, 8}, "3,5-6", 0},
		{true, []uint64{3, 1, 2, 5, 4}, "", 0},
		{true, []uint64{1, 2, 2, 3, 5, 5}, "4", 2},
		{false, []uint64{40, 41, 43}, "42", 0},
		{false, []uint64{40, 38, 39, 37, 45}, "41-44", 0},
		{false, []uint64{40, 35, 38, 36}, "37,39", 0},
		{false, []uint64{40, 39, 39, 40}, "", 2},
	} {
		var s *sessionSeq
		if tc.opened {
			s = &sessionSeq{Opened: true, Low: 1, Next: 1}
		}
		dups := 0
		for _, n := range tc.seqs {
			if s == nil {
				s = &sessionSeq{Low: n, Next: n}
			}
			if !s.add(n) {
				dups++
			}
		}
		got := ""
		if f := s.gaps("s"); len(f) == 1 {
			got = strings.Join(f[0].Missing, ",")
		}
		if got != tc.missing || dups != tc.dups {
			t.Errorf("%v opened=%v: missing %q, %d duplicates; want %q, %d", tc.seqs, tc.opened, got, dups, tc.missing, tc.dups)
		}
	}
}
