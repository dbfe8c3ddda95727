package policy

import (
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/witness/witnesstest"
)

func newTestLog(t testing.TB, origin string) *witnesstest.Log { return witnesstest.NewLog(t, origin) }

// newTestSigner returns a cosignature v1 signer and its verifier key.
func newTestSigner(t testing.TB, name string) (*checkpoint.TimeSigner, string) {
	skey, vkey, err := checkpoint.GenerateTimeKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.NewTimeSigner(skey, func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) })
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}
