package tree_test

import (
	"encoding/hex"
	"fmt"
	"log"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/tree"
)

// Example appends three entries the way the log's sequencer does, then
// serves a root, a proof and a tile.
func Example() {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	t, err := tree.Open(db)
	if err != nil {
		log.Fatal(err)
	}

	var leaves [][]byte
	for _, e := range []string{"alpha", "beta", "gamma"} {
		leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf([]byte(e)))
	}
	u, err := t.Prepare(leaves)
	if err != nil {
		log.Fatal(err)
	}
	txn := db.NewTransaction(true) // the same transaction also holds the entries
	defer txn.Discard()
	if err := u.Write(txn); err != nil {
		log.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		log.Fatal(err)
	}
	t.Apply(u)

	fmt.Println("size", t.Size())
	fmt.Println("root", hex.EncodeToString(t.Root()))
	p, err := t.InclusionProof(1, 3)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("proof of leaf 1:", len(p), "hashes")
	path := agentlog.TilePath{Level: 0, Index: 0, Width: tree.PartialWidth(0, t.Size())}
	tile, err := t.Tile(path.Level, path.Index, path.Width)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("tile/%s: %d bytes\n", path, len(tile))
	// Output:
	// size 3
	// root 385da30f3917282c8939dff851957e519ab1846b1351a14c0adb3b11632742aa
	// proof of leaf 1: 2 hashes
	// tile/0/000.p/3: 96 bytes
}
