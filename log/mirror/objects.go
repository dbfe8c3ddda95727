package mirror

import (
	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/tree"
)

// growth returns the objects that a tree of size new has and a tree of
// size old < new does not: at each level, the tiles that became full and
// the new partial tile, and the same for entry bundles. Full tiles come
// first, lowest level first, so an interrupted upload leaves the least to
// redo.
func growth(old, new uint64) []agentlog.TilePath {
	var out []agentlog.TilePath
	add := func(level, o, n uint64, entries bool) {
		for i := o / tree.TileWidth; i < n/tree.TileWidth; i++ {
			out = append(out, agentlog.TilePath{Level: level, Index: i, Width: tree.TileWidth, Entries: entries})
		}
		if w := n % tree.TileWidth; w != 0 && n > o {
			out = append(out, agentlog.TilePath{Level: level, Index: n / tree.TileWidth, Width: int(w), Entries: entries})
		}
	}
	if new <= old {
		return nil
	}
	add(0, old, new, true)
	for level := uint64(0); level <= tree.MaxLevel; level++ {
		o, n := old>>(tree.TileHeight*level), new>>(tree.TileHeight*level)
		if n == 0 {
			break
		}
		add(level, o, n, false)
	}
	return out
}
