package mirror

import (
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/tree"
)

// TestGrowthMatchesTlog checks the hash tiles growth lists against x/mod's
// tlog.NewTiles, and that the bundles follow the level-0 tiles.
func TestGrowthMatchesTlog(t *testing.T) {
	sizes := []uint64{0, 1, 2, 255, 256, 257, 511, 512, 65535, 65536, 65537, 70000}
	for _, old := range sizes {
		for _, new := range sizes {
			if new <= old {
				if g := growth(old, new); g != nil {
					t.Fatalf("growth(%d, %d) = %v, want nothing", old, new, g)
				}
				continue
			}
			var want, got, bundles, level0 []string
			for _, tl := range tlog.NewTiles(tree.TileHeight, int64(old), int64(new)) {
				want = append(want, agentlog.TilePath{Level: uint64(tl.L), Index: uint64(tl.N), Width: tl.W}.String())
			}
			for _, p := range growth(old, new) {
				if p.Entries {
					p.Entries = false
					bundles = append(bundles, p.String())
					continue
				}
				got = append(got, p.String())
				if p.Level == 0 {
					level0 = append(level0, p.String())
				}
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("growth(%d, %d) hash tiles:\n%v\ntlog.NewTiles:\n%v", old, new, got, want)
			}
			if !slices.Equal(bundles, level0) {
				t.Fatalf("growth(%d, %d) bundles %v, level-0 tiles %v", old, new, bundles, level0)
			}
		}
	}
}
