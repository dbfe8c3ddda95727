package client

import "testing"

func TestTilePath(t *testing.T) {
	for _, tc := range []struct {
		level, index uint64
		width        int
		entries      bool
		want         string
	}{
		{0, 0, 256, false, "0/000"},
		{1, 1234067, 256, false, "1/x001/x234/067"},
		{0, 5, 17, true, "entries/005.p/17"},
		{2, 1000, 255, false, "2/x001/000.p/255"},
	} {
		if got := tilePath(tc.level, tc.index, tc.width, tc.entries); got != tc.want {
			t.Errorf("tilePath(%d, %d, %d, %v) = %q, want %q", tc.level, tc.index, tc.width, tc.entries, got, tc.want)
		}
	}
}
