package checkpoint_test

import (
	"crypto/sha256"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
)

// Sign the first checkpoint of a new log (the empty tree) with fixed keys and
// a fixed time, then verify it.
func Example() {
	const (
		origin   = "example.com/agentlog"
		logSKey  = "PRIVATE+KEY+example.com/agentlog+caec1adf+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
		timeSKey = "PRIVATE+KEY+example.com/agentlog/time+0ee49295+BAICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIC"
	)
	signedAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	keys, err := checkpoint.NewKeys(origin, logSKey, timeSKey, func() time.Time { return signedAt })
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(keys.LogVKey)
	fmt.Println(keys.TimeVKey)

	root := sha256.Sum256(nil) // RFC 6962 root of the empty tree
	raw, err := checkpoint.Sign(keys, 0, root[:])
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.Write(raw)

	cp, err := checkpoint.Open(raw, keys.LogVerifier, keys.TimeVerifier)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cp.Origin, cp.Size, cp.Time)
	// Output:
	// example.com/agentlog+caec1adf+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c
	// example.com/agentlog/time+0ee49295+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU
	// example.com/agentlog
	// 0
	// 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
	//
	// — example.com/agentlog yuwa36ecKgE84U2pPn4T+/6MNk1v3/NFt50k7YIvMrHsh2PCuTzAAn3aI3D3S9XwRQKpbeQJOw74j+lvoG0IfU+/GQw=
	// — example.com/agentlog/time DuSSlQAAAABpVzWl2iY6ztq9LyKwcoS1cNR3QBnUIqzxdjaP2lCJmPgtH0W1YBeuojSbfxrml4l8X+K/rjPngqrtwffJvp8H17o6BQ==
	// example.com/agentlog 0 2026-01-02 03:04:05 +0000 UTC
}
