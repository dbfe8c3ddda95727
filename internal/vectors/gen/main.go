// Command gen writes the shared client test vectors to testdata/vectors
// (package vectors documents them). Run it from the repository root:
//
//	go run ./internal/vectors/gen
package main

import (
	"log"
	"os"
	"path/filepath"

	"github.com/agentlog/agentlog/internal/vectors"
)

func main() {
	files, err := vectors.Generate()
	if err != nil {
		log.Fatalf("generating vectors: %v", err)
	}
	dir := filepath.Join("testdata", "vectors")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
