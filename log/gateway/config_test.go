package gateway

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.token")
	os.WriteFile(loose, []byte("x"), 0o644)
	os.Chmod(loose, 0o644)
	for _, c := range []struct{ name, cfg, flag, want string }{
		{"unknown member", `{"routes": {"a": {"upstream": "http://h", "recrod": "before"}}}`, "", `unknown object member name "recrod"`},
		{"duplicate name", `{"routes": {"a": {"upstream": "http://h"}, "a": {"upstream": "http://h"}}}`, "", "duplicate"},
		{"no routes", `{}`, "", "no routes"},
		{"bad record", `{"routes": {"a": {"upstream": "http://h", "record": "later"}}}`, "", `record "later"`},
		{"bad scope", `{"routes": {"a": {"upstream": "http://h", "scope": "strict"}}}`, "", `scope "strict"`},
		{"bad upstream", `{"routes": {"a": {"upstream": "ftp://h"}}}`, "", "want an http(s) URL"},
		{"upstream with credentials", `{"routes": {"a": {"upstream": "http://u:p@h"}}}`, "", "without credentials"},
		{"bad name", `{"routes": {"A/b": {"upstream": "http://h"}}}`, "", "route name"},
		{"loose token file", `{"routes": {"a": {"upstream": "http://h", "upstream_token_file": "` + loose + `"}}}`, "", "chmod 600"},
		{"missing token file", `{"routes": {"a": {"upstream": "http://h", "upstream_token_file": "/nonexistent"}}}`, "", "no such file"},
		{"mcp with action", `{"routes": {"a": {"upstream": "mcp+http://h", "action": "x"}}}`, "", "for HTTP routes"},
		{"http with args", `{"routes": {"a": {"upstream": "http://h", "record_args": ["x"]}}}`, "", "for MCP routes"},
		{"bad rule", `{"routes": {"a": {"upstream": "http://h", "resources": [{"path": "/c/{id}", "resource": "c/{other}"}]}}}`, "", "does not capture"},
		{"flag conflict", `{"routes": {"a": {"upstream": "http://h"}}}`, "a=http://other", "configuration file gives"},
		{"bad flag", `{}`, "nourl", "want NAME=URL"},
		{"bad duration", `{"routes": {"a": {"upstream": "http://h"}}, "session_cache": "forever"}`, "", "session_cache"},
		{"appends in flight", `{"routes": {"a": {"upstream": "http://h"}}, "max_appends_in_flight": 257}`, "", "max_appends_in_flight 257"},
		{"agent's body share above the whole", `{"routes": {"a": {"upstream": "http://h", "max_request_bytes": 1024}}, "max_body_bytes_in_flight": 4096, "max_body_bytes_per_agent": 8192}`, "", "max_body_bytes_per_agent 8192: want the largest max_request_bytes (1024) to max_body_bytes_in_flight (4096)"},
		{"agent's body share below a request", `{"routes": {"a": {"upstream": "http://h", "max_request_bytes": 1024}}, "max_body_bytes_per_agent": 512}`, "", "max_body_bytes_per_agent 512"},
		{"log appends below one session's", `{"routes": {"a": {"upstream": "http://h"}}, "max_appends_in_flight": 32, "max_log_appends": 16}`, "", "max_log_appends 16: want max_appends_in_flight (32)"},
		{"log appends", `{"routes": {"a": {"upstream": "http://h"}}, "max_log_appends": 5000}`, "", "max_log_appends 5000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.json")
			os.WriteFile(p, []byte(c.cfg), 0o600)
			var flags []string
			if c.flag != "" {
				flags = []string{c.flag}
			}
			_, err := Load("http://127.0.0.1:1", p, flags)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := Load("not a url", "", []string{"a=http://h"}); err == nil {
		t.Fatal("a bad --log URL was accepted")
	}
}

func TestLoadRoutes(t *testing.T) {
	c, err := Load("http://127.0.0.1:1/", "", []string{"tools=http://127.0.0.1:9000", "crm=mcp+http://127.0.0.1:9001/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 2 || c.Routes[0].Name != "crm" || !c.Routes[0].MCP || c.Routes[0].Upstream.String() != "http://127.0.0.1:9001/mcp" ||
		c.Routes[1].MCP || c.Routes[1].Before || c.Routes[1].Enforce || c.Routes[1].FailOpen || c.Log != "http://127.0.0.1:1" {
		t.Fatalf("routes %+v", c.Routes)
	}
}

func TestResourceRules(t *testing.T) {
	f := RouteFile{Upstream: "http://h", Resources: []ResourceRule{
		{Path: "/customers/{id}/notes", Resource: "customers/{id}"},
		{Path: "/files/{path...}", Resource: "file:{path}"},
		{Path: "/v1/*/items/{item}", Resource: "items/{item}"},
	}}
	r, err := checkRoute("t", f)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"/customers/42/notes":   "customers/42",
		"/customers/42/notes/x": "customers/42/notes/x",
		"/customers/42":         "customers/42",
		"/files/a/b/c.txt":      "file:a/b/c.txt",
		"/v1/shop/items/7":      "items/7",
		"/v1/shop/items":        "v1/shop/items",
		"/":                     "",
	} {
		if got := r.resource(p); got != want {
			t.Errorf("resource(%q) = %q, want %q", p, got, want)
		}
	}
}

func FuzzResourceRule(f *testing.F) {
	f.Add("/customers/{id}/notes", "customers/{id}", "/customers/42/notes")
	f.Add("/files/{p...}", "f/{p}", "/files/a/b")
	f.Fuzz(func(t *testing.T, path, resource, p string) {
		rr, err := compileRule(ResourceRule{Path: path, Resource: resource})
		if err != nil {
			return
		}
		rr.match(p) // must not panic
	})
}

func FuzzParseReceipt(f *testing.F) {
	f.Add("12 " + strings.Repeat("A", 43) + "=")
	f.Add("0 x")
	f.Fuzz(func(t *testing.T, s string) {
		rc, err := ParseReceipt(s)
		if err != nil {
			return
		}
		if back, err := ParseReceipt(rc.String()); err != nil || back.Index != rc.Index || string(back.LeafHash) != string(rc.LeafHash) {
			t.Fatalf("%q does not round-trip: %v", s, err)
		}
	})
}

func FuzzParseReceipts(f *testing.F) {
	h := strings.Repeat("A", 43) + "="
	f.Add("12 " + h + ", 13 " + h)
	f.Add("1 " + h + ",")
	f.Add(",")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseReceipts(s)
		if err != nil {
			return
		}
		if len(rs) == 0 {
			t.Fatalf("%q: no receipts and no error", s)
		}
		var strs []string
		for _, rc := range rs {
			strs = append(strs, rc.String())
		}
		hdr := http.Header{}
		setReceipts(hdr, ReceiptHeader, strs)
		if hdr.Get(ReceiptHeader) == "" {
			if n, _ := strconv.Atoi(hdr.Get(ReceiptsInBodyHeader)); n != len(rs) {
				t.Fatalf("%d receipts: neither a field nor a count", len(rs))
			}
			return
		}
		back, err := ParseReceipts(hdr.Get(ReceiptHeader))
		if err != nil || len(back) != len(rs) {
			t.Fatalf("%q does not round-trip: %v", s, err)
		}
		for i := range rs {
			if back[i].Index != rs[i].Index || string(back[i].LeafHash) != string(rs[i].LeafHash) {
				t.Fatalf("%q: receipt %d does not round-trip", s, i)
			}
		}
	})
}

// FuzzLoad: the configuration file's parser and checks never panic, and
// what they accept is a usable configuration.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"routes": {"crm": {"upstream": "mcp+http://127.0.0.1:9001/mcp", "record": "before", "scope": "enforce", "resources": [{"path": "/customers/{id}", "resource": "customers/{id}"}]}}}`), "tools=http://127.0.0.1:9000")
	f.Add([]byte(`{"session_cache": "1s", "max_batch": 10, "routes": {"a": {"upstream": "http://h", "fail_open": true, "record_args": ["x"]}}}`), "")
	f.Add([]byte(`{"routes": {}}`), "a=")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte, route string) {
		p := filepath.Join(dir, "gateway.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		var flags []string
		if route != "" {
			flags = []string{route}
		}
		c, err := Load("http://127.0.0.1:1", p, flags)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a sentence")
			}
			return
		}
		if len(c.Routes) == 0 {
			t.Fatalf("%s: accepted with no routes", b)
		}
		for _, r := range c.Routes {
			if r.Name == "" || r.Upstream == nil || (r.Upstream.Scheme != "http" && r.Upstream.Scheme != "https") || r.Upstream.Host == "" {
				t.Fatalf("%s: route %+v accepted", b, r)
			}
		}
	})
}
