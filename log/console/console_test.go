package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/log/console"
)

// TestConsoleErrors: what the console's file server cannot serve gets the
// JSON {"error": ...} of every other answer, not its plain text, and no
// directory is listed (sdk/ was), and a name no file can have (invalid
// UTF-8) is a 404, not the file server's 500.
func TestConsoleErrors(t *testing.T) {
	hs := httptest.NewServer(console.Handler(http.NotFoundHandler()))
	defer hs.Close()
	get := func(path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", hs.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, c := range []struct {
		path string
		hdr  []string
		want int
	}{
		{"/console/no-such-file.js", nil, 404},
		{"/console/sdk/", nil, 404},
		{"/console/sdk", nil, 404},
		{"/console/app.js", []string{"Range", "bytes=99999999-"}, 416},
		{"/console/%ff", nil, 404},
		{"/console/%ff/app.js", nil, 404},
	} {
		resp, b := get(c.path, c.hdr...)
		var e struct{ Error string }
		if resp.StatusCode != c.want || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("%s %v: %d %q %s, want %d with a JSON error", c.path, c.hdr, resp.StatusCode, resp.Header.Get("Content-Type"), b, c.want)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: no Content-Security-Policy", c.path)
		}
	}
	for _, p := range []string{"/console/", "/console/app.js", "/console/sdk/verify.js"} {
		if resp, b := get(p); resp.StatusCode != 200 || strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %q %.100s", p, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
}
