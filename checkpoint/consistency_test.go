package checkpoint

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint/checkpointtest"
)

// signedAt signs the tree's current head and opens it.
func signedAt(t *testing.T, k *Keys, m *checkpointtest.MemTree) *Signed {
	t.Helper()
	root, err := m.RootAt(m.Size())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := SignAt(k, m.Size(), root, time.Unix(1767323045, 0))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(raw, k.LogVerifier, k.TimeVerifier)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheckConsistent(t *testing.T) {
	k := testKeys(t, nil)
	for _, sizes := range [][2]int{{0, 0}, {0, 5}, {1, 1}, {1, 2}, {3, 4}, {7, 8}, {8, 9}, {5, 300}, {256, 257}, {17, 17}} {
		m := checkpointtest.NewMemTree("a", sizes[0])
		last := signedAt(t, k, m)
		m.Add("a", sizes[1]-sizes[0])
		root, _ := m.RootAt(m.Size())
		if err := CheckConsistent(last, m.Size(), root, m); err != nil {
			t.Errorf("growth %d -> %d: %v", sizes[0], sizes[1], err)
		}
	}
	if err := CheckConsistent(nil, 3, testRoot("anything"), checkpointtest.NewMemTree("a", 0)); err != nil {
		t.Errorf("nil last: %v", err)
	}
}

func TestCheckConsistentRefuses(t *testing.T) {
	k := testKeys(t, nil)
	base := checkpointtest.NewMemTree("a", 10)
	last := signedAt(t, k, base)

	grown := checkpointtest.NewMemTree("a", 10)
	grown.Add("a", 5)
	grownRoot, _ := grown.RootAt(15)
	forked := checkpointtest.NewMemTree("b", 15) // different leaves from the start
	forkedRoot, _ := forked.RootAt(15)
	smaller := checkpointtest.NewMemTree("a", 6)
	smallerRoot, _ := smaller.RootAt(6)
	lateFork := checkpointtest.NewMemTree("a", 10) // same first 10 leaves...
	lateFork.Add("c", 5)                           // ...then other ones
	lateForkRoot, _ := lateFork.RootAt(15)

	for _, tc := range []struct {
		name string
		size uint64
		root []byte
		p    Prover
		want string
	}{
		{"same size other root", 10, testRoot("other"), base, "same tree size"},
		{"smaller size", 6, smallerRoot, smaller, "fewer"},
		{"fork", 15, forkedRoot, forked, "root at size 10"},
		{"candidate root not the tree's", 15, lateForkRoot, grown, "does not verify"},
		{"root of another tree with the right prefix", 15, grownRoot, lateFork, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckConsistent(last, tc.size, tc.root, tc.p)
			var ie *InconsistentError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *InconsistentError", err)
			}
			if !strings.Contains(ie.Reason, tc.want) {
				t.Errorf("reason %q does not mention %q", ie.Reason, tc.want)
			}
			if string(ie.Trusted) != string(last.Raw) || ie.OtherSize != tc.size || string(ie.OtherRoot) != string(tc.root) {
				t.Errorf("evidence %+v does not hold both checkpoints", ie)
			}
			msg := err.Error()
			for _, s := range []string{string(last.Raw), fmt.Sprintf("size %d root %s", tc.size, b64(tc.root)), fmt.Sprintf("size 10 root %s", b64(last.Root))} {
				if !strings.Contains(msg, s) {
					t.Errorf("Error() = %q does not contain %q", msg, s)
				}
			}
		})
	}

	// An error of the prover is not evidence of inconsistency.
	err := CheckConsistent(last, 15, grownRoot, checkpointtest.NewMemTree("a", 5))
	var ie *InconsistentError
	if err == nil || errors.As(err, &ie) {
		t.Errorf("prover failure: %v", err)
	}
}
