package tree

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The vectors in ../testdata/merkle come from transparency-dev/merkle (see the
// README there). They describe proofs in the tree of the eight RFC 6962 test
// leaves below; "happy path" vectors hold the correct proof.
var rfc6962Leaves = []string{
	"",
	"\x00",
	"\x10",
	"\x20\x21",
	"\x30\x31",
	"\x40\x41\x42\x43",
	"\x50\x51\x52\x53\x54\x55\x56\x57",
	"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
}

type inclusionVector struct {
	LeafIdx  uint64   `json:"leafIdx"`
	TreeSize uint64   `json:"treeSize"`
	Root     []byte   `json:"root"`
	LeafHash []byte   `json:"leafHash"`
	Proof    [][]byte `json:"proof"`
	Desc     string   `json:"desc"`
	WantErr  bool     `json:"wantErr"`
}

type consistencyVector struct {
	Size1   uint64   `json:"size1"`
	Size2   uint64   `json:"size2"`
	Root1   []byte   `json:"root1"`
	Root2   []byte   `json:"root2"`
	Proof   [][]byte `json:"proof"`
	Desc    string   `json:"desc"`
	WantErr bool     `json:"wantErr"`
}

func vectorTree(t *testing.T) *Tree {
	t.Helper()
	db := openMemDB(t)
	tr := openTree(t, db, Options{})
	var leaves [][]byte
	for _, l := range rfc6962Leaves {
		leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf([]byte(l)))
	}
	appendLeaves(t, tr, db, leaves)
	return tr
}

func readVectors(t *testing.T, kind string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "testdata", "merkle", kind, "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no %s vectors found", kind)
	}
	return files
}

// vectorName names a subtest after the vector's path below testdata/merkle.
func vectorName(f string) string {
	rel, err := filepath.Rel(filepath.Join("..", "testdata", "merkle"), f)
	if err != nil {
		return f
	}
	return filepath.ToSlash(rel)
}

func equalProofs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestInclusionVectors(t *testing.T) {
	tr := vectorTree(t)
	for _, f := range readVectors(t, "inclusion") {
		t.Run(vectorName(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v inclusionVector
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			// A corrupted vector may name sizes our tree does not have.
			root, err1 := tr.RootAt(v.TreeSize)
			leaf, err2 := tr.LeafHash(v.LeafIdx)
			p, err3 := tr.InclusionProof(v.LeafIdx, v.TreeSize)
			if err := errors.Join(err1, err2, err3); err != nil && !v.WantErr {
				t.Fatal(err)
			}
			match := err1 == nil && err2 == nil && err3 == nil &&
				bytes.Equal(root, v.Root) && bytes.Equal(leaf, v.LeafHash) && equalProofs(p, v.Proof)
			if match == v.WantErr {
				t.Fatalf("%s: our root %x, leaf %x, proof %x; vector wantErr=%v", v.Desc, root, leaf, p, v.WantErr)
			}
			verr := proof.VerifyInclusion(rfc6962.DefaultHasher, v.LeafIdx, v.TreeSize, v.LeafHash, v.Proof, v.Root)
			if (verr != nil) != v.WantErr {
				t.Fatalf("%s: VerifyInclusion = %v, wantErr=%v", v.Desc, verr, v.WantErr)
			}
		})
	}
}

func TestConsistencyVectors(t *testing.T) {
	tr := vectorTree(t)
	for _, f := range readVectors(t, "consistency") {
		t.Run(vectorName(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v consistencyVector
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			r1, err1 := tr.RootAt(v.Size1)
			r2, err2 := tr.RootAt(v.Size2)
			p, err3 := tr.ConsistencyProof(v.Size1, v.Size2)
			if err := errors.Join(err1, err2, err3); err != nil && !v.WantErr {
				t.Fatal(err)
			}
			match := err1 == nil && err2 == nil && err3 == nil &&
				bytes.Equal(r1, v.Root1) && bytes.Equal(r2, v.Root2) && equalProofs(p, v.Proof)
			if match == v.WantErr {
				t.Fatalf("%s: our roots %x %x, proof %x; vector wantErr=%v", v.Desc, r1, r2, p, v.WantErr)
			}
			verr := proof.VerifyConsistency(rfc6962.DefaultHasher, v.Size1, v.Size2, v.Proof, v.Root1, v.Root2)
			if (verr != nil) != v.WantErr {
				t.Fatalf("%s: VerifyConsistency = %v, wantErr=%v", v.Desc, verr, v.WantErr)
			}
		})
	}
}
