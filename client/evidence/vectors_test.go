package evidence

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/agentlog/agentlog/witness/policy"
)

// TestVectorsTLogProofs runs the tlog-proof files of the shared vectors
// (testdata/vectors/tlog_proofs.json, which the Python and TypeScript
// clients run too) through the parser and checks evidence verification
// uses: form, index, policy, inclusion.
func TestVectorsTLogProofs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "vectors", "tlog_proofs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Policies map[string]string
		Vectors  []struct {
			Name, Entry, Proof, Policy, Reason string
			Index                              uint64
			Valid                              bool
		}
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Vectors {
		reason := func() string {
			p, err := parseTLogProof([]byte(v.Proof))
			if err != nil {
				return "form: " + err.Error()
			}
			if p.Index != v.Index {
				return "index-mismatch"
			}
			pol, err := policy.Parse([]byte(f.Policies[v.Policy]))
			if err != nil {
				t.Fatal(err)
			}
			ver, err := pol.Verify(p.Checkpoint)
			if err != nil {
				return "checkpoint: " + err.Error()
			}
			if p.Index >= ver.Size {
				return "index-out-of-range"
			}
			hashes := make([][]byte, len(p.Hashes))
			for i := range p.Hashes {
				hashes[i] = p.Hashes[i][:]
			}
			err = proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, ver.Size, rfc6962.DefaultHasher.HashLeaf([]byte(v.Entry)), hashes, ver.Root)
			var rm proof.RootMismatchError
			switch {
			case err == nil:
				return ""
			case errors.As(err, &rm):
				return "root-mismatch"
			default:
				return "wrong-proof-size"
			}
		}()
		switch {
		case v.Valid && reason != "":
			t.Errorf("%s: %s", v.Name, reason)
		case !v.Valid && reason == "":
			t.Errorf("%s: accepted, want %s", v.Name, v.Reason)
		case !v.Valid && (v.Reason == "index-mismatch" || v.Reason == "root-mismatch" || v.Reason == "wrong-proof-size" || v.Reason == "index-out-of-range") && reason != v.Reason:
			t.Errorf("%s: %s, want %s", v.Name, reason, v.Reason)
		}
	}
}
