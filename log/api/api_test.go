package api

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
)

const (
	adminTok   = "admin-secret"
	auditorTok = "auditor-secret"
	agentTok   = "agent-secret"
)

// newTestServer starts a server with static admin, auditor and agent-role
// tokens and one approved agent whose session credential appendN uses.
// The entries the setup writes (registration, approval, session) are
// counted in base.
func newTestServer(t *testing.T) (*httptest.Server, *alog.Log) {
	t.Helper()
	e := newEnv(t, Config{})
	e.sessionTok = e.openSession(t, e.agent(t, "bot"), "bot", "test-task", 0)
	sessionToks.Store(e.hs.URL, e.sessionTok)
	e.base = e.l.Size()
	bases.Store(e.hs.URL, e.base)
	return e.hs, e.l
}

func do(t *testing.T, method, url, tok, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func appendN(t *testing.T, url string, n int) []agentlog.Appended {
	t.Helper()
	var sb strings.Builder
	sb.WriteString(`{"entries":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"action":"act","resource":"r/%d"}`, i)
	}
	sb.WriteString(`]}`)
	code, _, b := do(t, "POST", url+"/v1/entries", sessionTok(url), sb.String())
	if code != 200 {
		t.Fatalf("append: %d %s", code, b)
	}
	var r agentlog.AppendResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r.Entries
}

// TestEntryBytes checks that GET /v1/entries/{index} answers the leaf byte
// for byte, even with characters JSON encoders like to escape.
func TestEntryBytes(t *testing.T) {
	hs, _ := newTestServer(t)
	body := `{"entries":[{"action":"a<b","resource":"r&s","attributes":{"x":"<&>\u2028é","y":"\u003c"}}]}`
	code, _, b := do(t, "POST", hs.URL+"/v1/entries", sessionTok(hs.URL), body)
	if code != 200 {
		t.Fatalf("append: %d %s", code, b)
	}
	var r agentlog.AppendResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	code, _, b = do(t, "GET", fmt.Sprintf("%s/v1/entries/%d", hs.URL, r.Entries[0].Index), auditorTok, "")
	if code != 200 {
		t.Fatalf("entry: %d %s", code, b)
	}
	var e agentlog.EntryResponse
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rfc6962.DefaultHasher.HashLeaf(e.Entry), r.Entries[0].LeafHash) {
		t.Fatalf("the entry answered is not the leaf appended: %s", e.Entry)
	}
	if !bytes.Contains(e.Entry, []byte(`"x":"<&>\u2028é","y":"\u003c"`)) {
		t.Errorf("attributes not kept as sent: %s", e.Entry)
	}
}

// TestStatuses checks every route's answers to bad input and credentials:
// a status, a JSON error, and nothing written.
func TestStatuses(t *testing.T) {
	hs, l := newTestServer(t)
	base := baseOf(hs.URL)
	sess := sessionTok(hs.URL)
	appendN(t, hs.URL, 3)
	wantSize := base + 3
	big := `{"entries":[{"action":"a","attributes":{"k":"` + strings.Repeat("x", alog.MaxRequestBytes) + `"}}]}`
	for _, tc := range []struct {
		name, method, path, tok, body string
		want                          int
	}{
		{"append no token", "POST", "/v1/entries", "", `{"entries":[{"action":"a"}]}`, 401},
		{"append bad token", "POST", "/v1/entries", "nope", `{"entries":[{"action":"a"}]}`, 401},
		{"append auditor", "POST", "/v1/entries", auditorTok, `{"entries":[{"action":"a"}]}`, 403},
		{"append admin", "POST", "/v1/entries", adminTok, `{"entries":[{"action":"a"}]}`, 403},
		{"append agent role without session", "POST", "/v1/entries", agentTok, `{"entries":[{"action":"a"}]}`, 403},
		{"append empty action", "POST", "/v1/entries", sess, `{"entries":[{"action":""}]}`, 400},
		{"append unknown field", "POST", "/v1/entries", sess, `{"entries":[{"action":"a","agent":"x"}]}`, 400},
		{"append invalid utf8", "POST", "/v1/entries", sess, "{\"entries\":[{\"action\":\"\xff\"}]}", 400},
		{"append one bad of two", "POST", "/v1/entries", sess, `{"entries":[{"action":"a"},{"action":1}]}`, 400},
		{"append oversize leaf", "POST", "/v1/entries", sess, `{"entries":[{"action":"a","attributes":{"k":"` + strings.Repeat("x", 70000) + `"}}]}`, 400},
		{"append too large body", "POST", "/v1/entries", sess, big, 413},
		{"append wrong method", "PUT", "/v1/entries", sess, `{}`, 405},
		{"entry no token", "GET", "/v1/entries/0", "", "", 401},
		{"entry agent", "GET", "/v1/entries/0", agentTok, "", 403},
		{"entry beyond", "GET", fmt.Sprintf("/v1/entries/%d", 1<<40), auditorTok, "", 404},
		{"entry bad index", "GET", "/v1/entries/-1", auditorTok, "", 400},
		{"entry leading zero", "GET", "/v1/entries/01", auditorTok, "", 400},
		{"inclusion missing", "GET", "/v1/proof/inclusion?index=0", "", "", 400},
		{"inclusion index>=size", "GET", "/v1/proof/inclusion?index=3&size=3", "", "", 400},
		{"inclusion beyond", "GET", fmt.Sprintf("/v1/proof/inclusion?index=0&size=%d", 1<<40), "", "", 404},
		{"inclusion junk", "GET", "/v1/proof/inclusion?index=x&size=3", "", "", 400},
		{"consistency old>size", "GET", "/v1/proof/consistency?old=3&size=2", "", "", 400},
		{"consistency beyond", "GET", fmt.Sprintf("/v1/proof/consistency?old=1&size=%d", 1<<40), "", "", 404},
		{"tile bad path", "GET", "/tile/0/1234", "", "", 400},
		{"tile beyond", "GET", "/tile/0/000.p/200", "", "", 404},
		{"tile full not yet", "GET", "/tile/0/000", "", "", 404},
		{"bundle no token", "GET", "/tile/entries/000.p/3", "", "", 401},
		{"bundle agent", "GET", "/tile/entries/000.p/3", agentTok, "", 403},
		{"bundle beyond", "GET", "/tile/entries/000.p/200", auditorTok, "", 404},
		{"checkpoint none yet", "GET", "/checkpoint", "", "", 503},
		{"unknown route", "GET", "/nope", "", "", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, h, b := do(t, tc.method, hs.URL+tc.path, tc.tok, tc.body)
			if code != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, b, tc.want)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(b, &e); err != nil || e.Error == "" || h.Get("Content-Type") != "application/json" {
				t.Fatalf("error answer is not a JSON message: %q (%s)", b, h.Get("Content-Type"))
			}
		})
	}
	// Refused credentials (401 with a token, 403) are recorded as denied
	// entries; nothing else is written.
	var denied uint64
	for i := wantSize; i < l.Size(); i++ {
		leaf, _ := l.Entry(i)
		if lf, err := agentlog.ParseLeaf(leaf); err != nil || lf.Kind != alog.KindDenied {
			t.Fatalf("bad request wrote entry %d: %s", i, leaf)
		}
		denied++
	}
	if denied != 5 {
		t.Fatalf("%d denied entries, want 5 (auditor, admin, agent role, bundle agent, entry agent; the bad token is only counted)", denied)
	}
}

// TestReadPaths checks entries, bundles, tiles and proofs against the
// appended data and independent verifiers.
func TestReadPaths(t *testing.T) {
	hs, l := newTestServer(t)
	var all []agentlog.Appended
	base := baseOf(hs.URL)
	for _, n := range []int{1, 255, 7, 300} {
		all = append(all, appendN(t, hs.URL, n)...)
	}
	size := base + uint64(len(all))
	if l.Size() != size {
		t.Fatalf("size %d, want %d", l.Size(), size)
	}
	root := l.Tree().Root()
	// Entries: leaf hash matches the append receipt.
	var leaves [][]byte
	for i := range base {
		leaf, _ := l.Entry(i)
		leaves = append(leaves, leaf)
	}
	for j, a := range all {
		i := int(base) + j
		if a.Index != uint64(i) {
			t.Fatalf("receipt %d has index %d", i, a.Index)
		}
		code, _, b := do(t, "GET", fmt.Sprintf("%s/v1/entries/%d", hs.URL, i), auditorTok, "")
		if code != 200 {
			t.Fatalf("entry %d: %d %s", i, code, b)
		}
		var e agentlog.EntryResponse
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rfc6962.DefaultHasher.HashLeaf(e.Entry), a.LeafHash) {
			t.Fatalf("entry %d hash differs from receipt", i)
		}
		leaves = append(leaves, e.Entry)
		// Inclusion proof at a few sizes.
		for _, s := range []uint64{uint64(i) + 1, size} {
			code, _, b := do(t, "GET", fmt.Sprintf("%s/v1/proof/inclusion?index=%d&size=%d", hs.URL, i, s), "", "")
			if code != 200 {
				t.Fatalf("inclusion: %d %s", code, b)
			}
			var p agentlog.ProofResponse
			json.Unmarshal(b, &p)
			r, err := l.Tree().RootAt(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), s, a.LeafHash, p.Hashes, r); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, s, err)
			}
		}
	}
	// Consistency proofs.
	for _, old := range []uint64{1, 255, 256, 263, size} {
		code, _, b := do(t, "GET", fmt.Sprintf("%s/v1/proof/consistency?old=%d&size=%d", hs.URL, old, size), "", "")
		if code != 200 {
			t.Fatalf("consistency: %d %s", code, b)
		}
		var p agentlog.ProofResponse
		json.Unmarshal(b, &p)
		oldRoot, _ := l.Tree().RootAt(old)
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, size, p.Hashes, oldRoot, root); err != nil {
			t.Fatalf("consistency %d->%d: %v", old, size, err)
		}
	}
	// Entry bundles: full tile 0 and partial tile 1, parsed per C2SP.
	for _, tc := range []struct {
		path  string
		start int
		n     int
	}{{"/tile/entries/000", 0, 256}, {"/tile/entries/001", 256, 256}, {"/tile/entries/002.p/" + fmt.Sprint(size-512), 512, int(size - 512)}, {"/tile/entries/001.p/5", 256, 5}} {
		code, h, b := do(t, "GET", hs.URL+tc.path, auditorTok, "")
		if code != 200 {
			t.Fatalf("%s: %d %s", tc.path, code, b)
		}
		if !strings.Contains(h.Get("Cache-Control"), "immutable") {
			t.Fatalf("%s: Cache-Control %q", tc.path, h.Get("Cache-Control"))
		}
		for i := 0; i < tc.n; i++ {
			if len(b) < 2 {
				t.Fatalf("%s: bundle too short at entry %d", tc.path, i)
			}
			n := int(binary.BigEndian.Uint16(b))
			if !bytes.Equal(b[2:2+n], leaves[tc.start+i]) {
				t.Fatalf("%s: entry %d differs", tc.path, i)
			}
			b = b[2+n:]
		}
		if len(b) != 0 {
			t.Fatalf("%s: %d trailing bytes", tc.path, len(b))
		}
	}
	// Hash tiles checked with x/mod's tlog tile hashing: tile data read
	// through tlog.TileHashReader must reproduce the tree hash.
	var tr tileReader = func(tiles []tlog.Tile) ([][]byte, error) {
		out := make([][]byte, len(tiles))
		for i, tile := range tiles {
			p := fmt.Sprintf("/tile/%d/%03d", tile.L, tile.N)
			if tile.W < 256 {
				p += fmt.Sprintf(".p/%d", tile.W)
			}
			code, h, b := do(t, "GET", hs.URL+p, "", "")
			if code != 200 {
				return nil, fmt.Errorf("%s: %d %s", p, code, b)
			}
			if h.Get("Content-Type") != "application/octet-stream" || !strings.Contains(h.Get("Cache-Control"), "immutable") {
				return nil, fmt.Errorf("%s: headers %v", p, h)
			}
			out[i] = b
		}
		return out, nil
	}
	var th tlog.Hash
	copy(th[:], root)
	hr := tlog.TileHashReader(tlog.Tree{N: int64(size), Hash: th}, tr)
	if _, err := tlog.ProveRecord(int64(size), 300, hr); err != nil {
		t.Fatalf("tlog could not prove from our tiles: %v", err)
	}
}

// tileReader adapts a function to tlog.TileReader with tile height 8.
type tileReader func([]tlog.Tile) ([][]byte, error)

func (f tileReader) Height() int                               { return 8 }
func (f tileReader) ReadTiles(t []tlog.Tile) ([][]byte, error) { return f(t) }
func (f tileReader) SaveTiles([]tlog.Tile, [][]byte)           {}
