package vectors

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCommittedVectors checks that testdata/vectors holds exactly what the
// generator writes: run "go run ./internal/vectors/gen" after changing it.
func TestCommittedVectors(t *testing.T) {
	files, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "testdata", "vectors")
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%v (run go run ./internal/vectors/gen)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/vectors/%s differs from a fresh generation (run go run ./internal/vectors/gen)", name)
		}
	}
	// Deterministic: a second generation is identical.
	again, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if !bytes.Equal(again[name], b) {
			t.Errorf("%s differs between two generations", name)
		}
	}
}
