package signer

import (
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
)

const (
	testOrigin      = "example.com/agentlog"
	exampleLogSKey  = "PRIVATE+KEY+example.com/agentlog+caec1adf+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
	exampleTimeSKey = "PRIVATE+KEY+example.com/agentlog/time+0ee49295+BAICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIC"
)

func testKeys(t testing.TB, now func() time.Time) *checkpoint.Keys {
	t.Helper()
	k, err := checkpoint.NewKeys(testOrigin, exampleLogSKey, exampleTimeSKey, now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
