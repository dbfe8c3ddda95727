package agentlog

import (
	"errors"
	"math"
	"testing"
)

func TestParseTilePath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want TilePath
	}{
		{"0/000", TilePath{Level: 0, Index: 0, Width: 256}},
		{"0/x001/x234/067", TilePath{Level: 0, Index: 1234067, Width: 256}},
		{"1/005.p/17", TilePath{Level: 1, Index: 5, Width: 17}},
		{"entries/x001/000.p/3", TilePath{Index: 1000, Width: 3, Entries: true}},
		{"entries/999", TilePath{Index: 999, Width: 256, Entries: true}},
		{"63/001.p/255", TilePath{Level: 63, Index: 1, Width: 255}},
		{"2/000.p/1", TilePath{Level: 2, Index: 0, Width: 1}},
		{"0/x018/x446/x744/x073/x709/x551/615", TilePath{Index: math.MaxUint64, Width: 256}},
	} {
		got, err := ParseTilePath(tc.path)
		if err != nil {
			t.Errorf("ParseTilePath(%q): %v", tc.path, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseTilePath(%q) = %+v, want %+v", tc.path, got, tc.want)
		}
		if s := got.String(); s != tc.path {
			t.Errorf("ParseTilePath(%q).String() = %q", tc.path, s)
		}
	}
}

func TestParseTilePathRejects(t *testing.T) {
	for _, p := range []string{
		"", "0", "0/", "/000", "0//000", "0/000/", "0/00", "0/0000", "0/1", "0/x000",
		"0/x000/001",       // leading zero group
		"0/x001/x234/x067", // last group with x
		"0/001/234",        // inner group without x
		"00/000", "01/000", // level with leading zeros
		"64/000", "-1/000", "+1/000", "a/000", " 0/000", "0/000 ",
		"1/005.p/0", "1/005.p/256", "1/005.p/017", "1/005.p/", "1/005.p", "1/005.p/1/2",
		"1/x005.p/17", "1/005.p/17.p/3", "1/005.P/17", "1/005/p/17",
		"entries", "entries/", "entries/00", "Entries/000", "entries/000.p/00",
		"0/x018/x446/x744/x073/x709/x551/616",      // overflows uint64
		"0/x001/x018/x446/x744/x073/x709/x551/615", // too many groups
		"tile/0/000", "0/000.p/1a", "0/0a0", "0/x1/000", "0/x0001/000",
	} {
		if tp, err := ParseTilePath(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseTilePath(%q) = %+v, %v; want ErrInvalid", p, tp, err)
		}
	}
}

func TestTilePathString(t *testing.T) {
	for _, tc := range []struct {
		p    TilePath
		want string
	}{
		{TilePath{Level: 0, Index: 1234067, Width: 256}, "0/x001/x234/067"},
		{TilePath{Level: 3, Index: 1000, Width: 256}, "3/x001/000"},
		{TilePath{Level: 1, Index: 5}, "1/005"}, // zero Width is a full tile
		{TilePath{Entries: true, Index: 1000, Width: 3}, "entries/x001/000.p/3"},
		{TilePath{Index: 999999, Width: 100}, "0/x999/999.p/100"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func FuzzTilePath(f *testing.F) {
	for _, s := range []string{
		"0/000", "0/x001/x234/067", "1/005.p/17", "entries/x001/000.p/3", "63/999.p/255",
		"0/x000/001", "64/000", "1/005.p/256", "0/x018/x446/x744/x073/x709/x551/616", "",
		"entries/x001/x002/x003/x004/x005/x006/007.p/1",
	} {
		f.Add(s, uint64(0), uint64(0), 0, false)
	}
	f.Add("", uint64(5), uint64(1234067), 17, true)
	f.Add("", uint64(63), uint64(math.MaxUint64), 255, false)
	f.Fuzz(func(t *testing.T, s string, level, index uint64, width int, entries bool) {
		// Any string: parsing never panics, and what parses round-trips.
		if p, err := ParseTilePath(s); err == nil {
			if p.String() != s {
				t.Fatalf("ParseTilePath(%q).String() = %q", s, p.String())
			}
			if p.Width < 1 || p.Width > TileWidth || p.Level > MaxTileLevel || p.Entries && p.Level != 0 {
				t.Fatalf("ParseTilePath(%q) = %+v: out of range", s, p)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("ParseTilePath(%q): error %v does not wrap ErrInvalid", s, err)
		}
		// Any valid TilePath: String parses back to it.
		p := TilePath{Level: level % (MaxTileLevel + 1), Index: index, Width: 1 + int(uint(width)%TileWidth), Entries: entries}
		if entries {
			p.Level = 0
		}
		q, err := ParseTilePath(p.String())
		if err != nil || q != p {
			t.Fatalf("ParseTilePath(%q) = %+v, %v; want %+v", p.String(), q, err, p)
		}
	})
}
