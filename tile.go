package agentlog

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Tile geometry of c2sp.org/tlog-tiles.
const (
	// TileHeight is the height of a tile: each tile spans 8 levels of the
	// tree.
	TileHeight = 8
	// TileWidth is the number of hashes in a full tile and of entries in
	// a full entry bundle.
	TileWidth = 1 << TileHeight
	// HashSize is the size of a tile hash (SHA-256), in bytes.
	HashSize = 32
	// MaxTileLevel is the largest tile level a tile path may name.
	MaxTileLevel = 63
)

// TileWidthAt returns how many hashes tile (level, index) holds in a tree
// of size leaves (for level 0 and entry bundles: how many entries): 0 if
// the tile does not exist yet, TileWidth if it is full.
func TileWidthAt(level, index, size uint64) int {
	if level >= 64/TileHeight {
		return 0
	}
	n := size >> (TileHeight * level) // hashes at this level
	switch full := n >> TileHeight; {
	case index < full:
		return TileWidth
	case index == full:
		return int(n & (TileWidth - 1))
	default:
		return 0
	}
}

// TilePath names a C2SP tlog-tiles resource: a hash tile <L>/<N>[.p/<W>] or
// an entry bundle entries/<N>[.p/<W>], as found after "tile/" in a URL.
type TilePath struct {
	Level   uint64 // tile level, 0..MaxTileLevel; 0 for entry bundles
	Index   uint64 // tile index N within the level
	Width   int    // hashes or entries, 1..TileWidth; TileWidth is a full tile
	Entries bool   // an entry bundle rather than a hash tile
}

// maxIndexGroups is the number of 3-digit groups of the largest uint64.
const maxIndexGroups = 7

// ParseTilePath parses the part of a tile URL after "tile/", such as
// "0/x001/x234/067", "1/005.p/17" or "entries/x001/000.p/3". It accepts only
// the canonical encoding (the one String produces): a level from 0 to 63 and a
// width from 1 to 255 without leading zeros, and an index in 3-digit groups,
// all but the last prefixed by "x", the first not "x000". Errors wrap ErrInvalid.
func ParseTilePath(p string) (TilePath, error) {
	bad := func(why string) (TilePath, error) {
		return TilePath{}, fmt.Errorf("%w: tile path %q: %s", ErrInvalid, p, why)
	}
	tp := TilePath{Width: TileWidth}
	head, rest, ok := strings.Cut(p, "/")
	if !ok {
		return bad("no index")
	}
	if head == "entries" {
		tp.Entries = true
	} else {
		l, ok := parseDecimal(head, MaxTileLevel)
		if !ok {
			return bad("level is not a decimal from 0 to 63")
		}
		tp.Level = l
	}
	if i := strings.Index(rest, ".p/"); i >= 0 {
		w, ok := parseDecimal(rest[i+len(".p/"):], TileWidth-1)
		if !ok || w == 0 {
			return bad("partial width is not a decimal from 1 to 255")
		}
		tp.Width = int(w)
		rest = rest[:i]
	}
	for i := 0; ; i++ {
		if i == maxIndexGroups {
			return bad("index too long")
		}
		g, more, last := rest, "", true
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			g, more, last = rest[:j], rest[j+1:], false
		}
		if !last {
			if !strings.HasPrefix(g, "x") {
				return bad("index group not prefixed by x")
			}
			g = g[1:]
		}
		if len(g) != 3 || !isDigit(g[0]) || !isDigit(g[1]) || !isDigit(g[2]) {
			return bad("index group not 3 digits")
		}
		d := uint64(g[0]-'0')*100 + uint64(g[1]-'0')*10 + uint64(g[2]-'0')
		if i == 0 && !last && d == 0 {
			return bad("index has leading zeros")
		}
		if tp.Index > (math.MaxUint64-d)/1000 {
			return bad("index overflows 64 bits")
		}
		tp.Index = tp.Index*1000 + d
		if last {
			break
		}
		rest = more
	}
	if tp.String() != p {
		return bad("not in canonical form")
	}
	return tp, nil
}

// parseDecimal parses s, a decimal of at most max without sign or leading
// zeros.
func parseDecimal(s string, max uint64) (uint64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		return 0, false
	}
	return v, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// String formats p as the part of its URL after "tile/". A Width outside
// 1..255 formats as a full tile.
func (p TilePath) String() string {
	b := make([]byte, 0, 40)
	if p.Entries {
		b = append(b, "entries"...)
	} else {
		b = strconv.AppendUint(b, p.Level, 10)
	}
	b = append(b, '/')
	var groups [maxIndexGroups]uint64
	k := 0
	for n := p.Index; ; n /= 1000 {
		groups[k] = n % 1000
		k++
		if n < 1000 {
			break
		}
	}
	for i := k - 1; i >= 0; i-- {
		if i > 0 {
			b = append(b, 'x')
		}
		g := groups[i]
		b = append(b, byte('0'+g/100), byte('0'+g/10%10), byte('0'+g%10))
		if i > 0 {
			b = append(b, '/')
		}
	}
	if p.Width > 0 && p.Width < TileWidth {
		b = append(b, ".p/"...)
		b = strconv.AppendInt(b, int64(p.Width), 10)
	}
	return string(b)
}
