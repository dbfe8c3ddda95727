package witness

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/witness/witnesstest"
)

type testLog = witnesstest.Log

func newTestLog(t testing.TB, origin string) *testLog { return witnesstest.NewLog(t, origin) }

var body = witnesstest.Body

// fixedTime is the time test witnesses put in their cosignatures.
var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newTestSigner returns a cosignature v1 signer and its verifier key.
func newTestSigner(t testing.TB, name string) (*checkpoint.TimeSigner, string) {
	skey, vkey, err := checkpoint.GenerateTimeKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.NewTimeSigner(skey, func() time.Time { return fixedTime })
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

func post(t testing.TB, url string, b []byte) (int, string, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/add-checkpoint", "text/plain", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), out
}
