package api

import (
	"errors"
	"strconv"
	"testing"
)

// FuzzParseUint checks the strict decimal parser of proof queries and entry
// indexes: it never panics, accepts exactly the canonical decimal form of a
// uint64, and reports everything else as a bad request.
func FuzzParseUint(f *testing.F) {
	for _, s := range []string{"0", "1", "01", "-1", "+1", "18446744073709551615", "18446744073709551616", "1e3", " 1", "", "0x10", "١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseUint(s, "x")
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("parseUint(%q) error %v is not a bad request", s, err)
			}
			return
		}
		if strconv.FormatUint(n, 10) != s {
			t.Fatalf("parseUint(%q) = %d, not its canonical form", s, n)
		}
	})
}
