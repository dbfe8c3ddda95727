package tree

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkPrepare measures Prepare and Apply of 4096-leaf batches on a
// growing tree (no Badger write).
func BenchmarkPrepare(b *testing.B) {
	db := openMemDB(b)
	tr := openTree(b, db, Options{})
	appendLeaves(b, tr, db, leafHashes(0, 1000))
	leaves := leafHashes(1000, 1000+4096)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		u, err := tr.Prepare(leaves)
		if err != nil {
			b.Fatal(err)
		}
		tr.Apply(u)
	}
	b.ReportMetric(float64(b.N)*4096/b.Elapsed().Seconds(), "leaves/s")
}

// BenchmarkInclusionProof measures inclusion proofs for random leaves of a
// tree of 2^18 leaves at its full size, with every tile cached and with
// every full tile read from Badger.
func BenchmarkInclusionProof(b *testing.B) {
	const size = 1 << 18
	db := openMemDB(b)
	build := openTree(b, db, Options{CacheTiles: -1})
	for i := uint64(0); i < size; i += 8192 {
		appendLeaves(b, build, db, leafHashes(i, i+8192))
	}
	appendLeaves(b, build, db, leafHashes(size, size+77))
	for _, bc := range []struct {
		name  string
		cache int
	}{{"cached", 2048}, {"uncached", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			tr := openTree(b, db, Options{CacheTiles: bc.cache})
			n := tr.Size()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rnd := rand.New(rand.NewPCG(rand.Uint64(), 1))
				for pb.Next() {
					if _, err := tr.InclusionProof(rnd.Uint64N(n), n); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
