package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tproof "github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/api"
	"github.com/agentlog/agentlog/log/identity"
	"github.com/agentlog/agentlog/log/query"
	"github.com/agentlog/agentlog/witness"
	"github.com/agentlog/agentlog/witness/policy"
)

// evTestLog is a real log behind a real HTTP server, with the leaf clock
// under the test's control.
type evTestLog struct {
	l    *alog.Log
	srv  *api.Server
	keys *checkpoint.Keys
	now  atomic.Int64 // leaf time, Unix ns
	c    *client.Client
	wit  *checkpoint.TimeSigner // witness "w1"
}

const evToken = "auditor-secret"

// evBase is a Monday.
var evBase = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

func newEvTestLog(t *testing.T) *evTestLog {
	t.Helper()
	tl := &evTestLog{}
	tl.now.Store(evBase.UnixNano())
	l, err := alog.Open(alog.Config{Dir: t.TempDir(), Clock: func() time.Time { return time.Unix(0, tl.now.Load()).UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	tl.l = l
	ids, err := identity.Open(l.DB(), l, identity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ids.AddStatic(evToken, alog.Principal{ID: "auditor", Role: api.RoleAuditor})
	tl.srv = api.New(api.Config{Log: l, Identity: ids})
	hs := httptest.NewServer(tl.srv)
	t.Cleanup(func() { hs.Close(); l.Close() })
	if tl.keys, _, err = checkpoint.LoadOrCreateKeys(t.TempDir(), "evidence.test/log"); err != nil {
		t.Fatal(err)
	}
	if tl.wit, _, err = witness.LoadOrCreateKey(t.TempDir(), "w1.example", time.Now); err != nil {
		t.Fatal(err)
	}
	if tl.c, err = client.New(hs.URL, client.WithToken(evToken)); err != nil {
		t.Fatal(err)
	}
	return tl
}

// add appends one record by agent at time at.
func (tl *evTestLog) add(t *testing.T, agent, action, resource string, at time.Time) {
	t.Helper()
	tl.now.Store(at.UnixNano())
	p := alog.Principal{ID: agent, Role: "agent", Agent: agent, Session: "s-" + agent, Task: "task-" + agent}
	if _, err := tl.l.Append(context.Background(), p, alog.KindAction, []alog.Record{{Action: action, Resource: resource, Outcome: "success"}}); err != nil {
		t.Fatal(err)
	}
}

// publish signs and publishes a checkpoint of the current tree, cosigned
// by the witness.
func (tl *evTestLog) publish(t *testing.T) {
	t.Helper()
	raw, err := checkpoint.SignAt(tl.keys, tl.l.Size(), tl.l.Tree().Root(), time.Unix(0, tl.now.Load()))
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(raw, note.VerifierList(tl.keys.LogVerifier, tl.keys.TimeVerifier))
	if err != nil {
		t.Fatal(err)
	}
	if raw, err = note.Sign(n, tl.wit); err != nil {
		t.Fatal(err)
	}
	cp, err := checkpoint.Open(raw, tl.keys.LogVerifier, tl.keys.TimeVerifier)
	if err != nil {
		t.Fatal(err)
	}
	tl.srv.Publish(cp)
}

func (tl *evTestLog) policy(quorum string) []byte {
	return []byte(fmt.Sprintf("log %s\nwitness w1 %s\nquorum %s\n", tl.keys.LogVKey, tl.wit.VerifierKey(), quorum))
}

// fill appends 40 entries, one every 30 minutes from evBase, alternating
// between alice and bob, and publishes a checkpoint.
func (tl *evTestLog) fill(t *testing.T) {
	t.Helper()
	for i := 0; i < 40; i++ {
		agent, res := "alice", fmt.Sprintf("customers/%d", i)
		if i%2 == 1 {
			agent = "bob"
		}
		if i%3 == 0 {
			res = fmt.Sprintf("orders/%d", i)
		}
		tl.add(t, agent, "db.read", res, evBase.Add(time.Duration(i)*30*time.Minute))
	}
	tl.publish(t)
}

// bruteForce lists the indexes of the log's entries matching q.
func (tl *evTestLog) bruteForce(t *testing.T, q url.Values) []uint64 {
	t.Helper()
	f, err := query.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for i := uint64(0); i < tl.l.Size(); i++ {
		leaf, err := tl.l.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := alog.LeafMatches(f, leaf)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out = append(out, i)
		}
	}
	return out
}

func (tl *evTestLog) export(t *testing.T, q url.Values, opts ExportOptions) (string, *Verified) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "evidence")
	ev, err := Export(context.Background(), tl.c, q, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return dir, ev
}

func (tl *evTestLog) fullOpts() ExportOptions {
	return ExportOptions{LogVKey: tl.keys.LogVKey, TimeVKey: tl.keys.TimeVKey, Policy: tl.policy("w1")}
}

func TestEvidenceExportVerify(t *testing.T) {
	tl := newEvTestLog(t)
	tl.fill(t)
	pol, err := policy.Parse(tl.policy("w1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		q        url.Values
		complete bool
	}{
		{"agent and time range", url.Values{"agent": {"alice"}, "from": {"2026-03-02T10:00:00Z"}, "to": {"2026-03-02T20:00:00Z"}}, true},
		{"prefix, from only", url.Values{"resource": {"customers/*"}, "from": {"2026-03-02T18:10:00Z"}}, true},
		{"to only", url.Values{"agent": {"bob"}, "to": {"2026-03-02T09:00:00Z"}}, true},
		{"off hours in a zone", url.Values{"outside_hours": {"09:00-17:00"}, "tz": {"America/New_York"}, "from": {"2026-03-02T00:00:00Z"}, "to": {"2026-03-03T00:00:00Z"}}, true},
		{"empty time range", url.Values{"from": {"2026-03-02T08:10:00Z"}, "to": {"2026-03-02T08:20:00Z"}}, true},
		{"range before the log", url.Values{"to": {"2026-01-01T00:00:00Z"}}, true},
		{"range after the log", url.Values{"from": {"2027-01-01T00:00:00Z"}}, true},
		{"no time bounds", url.Values{"agent": {"alice"}, "resource": {"orders/*"}}, false},
		{"no match", url.Values{"agent": {"carol"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, ev := tl.export(t, tc.q, tl.fullOpts())
			want := tl.bruteForce(t, tc.q)
			if ev.Manifest.Matches != len(want) || ev.Complete != tc.complete {
				t.Fatalf("export: %d matches complete=%v, want %d complete=%v", ev.Manifest.Matches, ev.Complete, len(want), tc.complete)
			}
			ev2, err := Verify(dir, tl.keys.LogVKey, pol)
			if err != nil {
				t.Fatal(err)
			}
			if len(ev2.Cosigners) != 1 || ev2.Cosigners[0] != "w1" || ev2.Checkpoint.Time.IsZero() {
				t.Errorf("verify: cosigners %v, time %v", ev2.Cosigners, ev2.Checkpoint.Time)
			}
			entries, err := parseEntryLines(mustRead(t, dir, evEntries))
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, e := range entries {
				got = append(got, e.Index)
				checkWithFormats(t, dir, e, tl)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("exported %v, brute force %v", got, want)
			}
			// Nothing else than what the format lists.
			m, err := parseManifest(mustRead(t, dir, evManifest))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{evCheckpoint, evEntries, evSummary, evLogPub, evTimePub, evPolicy} {
				if _, ok := m.Files[f]; !ok {
					t.Errorf("manifest lacks %s", f)
				}
			}
			if _, ok := m.Files[evRange]; ok != tc.complete {
				t.Errorf("range.ndjson present=%v for complete=%v", ok, tc.complete)
			}
		})
	}
}

// checkWithFormats checks a tlog-proof file with transparency-dev/formats
// and transparency-dev/merkle alone, as any other implementation would.
func checkWithFormats(t *testing.T, dir string, e evEntry, tl *evTestLog) {
	t.Helper()
	b := mustRead(t, dir, proofPath(evProofDir, e.Index))
	var p tproof.TLogProof
	if err := p.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if p.Index != e.Index || !bytes.Equal(p.Checkpoint, mustRead(t, dir, evCheckpoint)) {
		t.Fatalf("proof of %d: index %d, checkpoint differs", e.Index, p.Index)
	}
	n, err := note.Open(p.Checkpoint, note.VerifierList(tl.keys.LogVerifier))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(n.Text, "\n")
	var size uint64
	fmt.Sscan(lines[1], &size)
	root := mustB64(t, lines[2])
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, size, rfc6962.DefaultHasher.HashLeaf(e.Leaf), hashes, root); err != nil {
		t.Fatalf("entry %d: %v", e.Index, err)
	}
}

func mustRead(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// copyTree copies an evidence directory.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// redigest rewrites manifest.json with the digests of the files as they
// are now, as someone covering their tracks would.
func redigest(t *testing.T, dir string, edit func(m *Manifest)) {
	t.Helper()
	m, err := parseManifest(mustRead(t, dir, evManifest))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	m.Files = map[string]string{}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == evManifest {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(b)
		m.Files[rel] = hex.EncodeToString(s[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, evManifest), marshalManifest(m), 0o600); err != nil {
		t.Fatal(err)
	}
}

// resummarize re-renders summary.html from the directory's contents.
func resummarize(t *testing.T, dir string) {
	t.Helper()
	m, err := parseManifest(mustRead(t, dir, evManifest))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.ParseQuery(m.Query)
	_, f, err := canonicalQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parseEntryLines(mustRead(t, dir, evEntries))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, evSummary), renderSummary(m, mustRead(t, dir, evCheckpoint), f, entries), 0o600); err != nil {
		t.Fatal(err)
	}
}

// flip changes the byte at the first occurrence of old in a file.
func flip(t *testing.T, dir, name, old, new string) {
	t.Helper()
	b := mustRead(t, dir, name)
	i := bytes.Index(b, []byte(old))
	if i < 0 {
		t.Fatalf("%s does not contain %q", name, old)
	}
	b = append(b[:i:i], append([]byte(new), b[i+len(old):]...)...)
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// removeLine deletes the line of an NDJSON file holding entry index.
func removeLine(t *testing.T, dir, name string, index uint64) {
	t.Helper()
	var out []byte
	for _, l := range bytes.SplitAfter(mustRead(t, dir, name), []byte("\n")) {
		if !bytes.HasPrefix(l, []byte(fmt.Sprintf(`{"index":%d,`, index))) {
			out = append(out, l...)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, name), out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestEvidenceTampering(t *testing.T) {
	tl := newEvTestLog(t)
	tl.fill(t)
	q := url.Values{"agent": {"alice"}, "from": {"2026-03-02T10:00:00Z"}, "to": {"2026-03-02T20:00:00Z"}}
	good, ev := tl.export(t, q, tl.fullOpts())
	// Entries 4..23 are in the range; alice has the even ones.
	if ev.Manifest.Start != 4 || ev.Manifest.End != 24 || ev.Manifest.Matches != 10 {
		t.Fatalf("range [%d, %d) with %d matches, want [4, 24) with 10", ev.Manifest.Start, ev.Manifest.End, ev.Manifest.Matches)
	}
	pol, _ := policy.Parse(tl.policy("w1"))
	other, _, _ := checkpoint.LoadOrCreateKeys(t.TempDir(), "evidence.test/log")

	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		key    string
		policy *policy.Policy
		want   string // in the error
	}{
		{name: "entry byte", tamper: func(t *testing.T, dir string) { flip(t, dir, evEntries, `"db.read"`, `"db.reae"`) },
			want: "entries.ndjson: its SHA-256"},
		{name: "entry byte, manifest redone", tamper: func(t *testing.T, dir string) {
			flip(t, dir, evEntries, `"db.read"`, `"db.reae"`)
			redigest(t, dir, nil)
		}, want: "proofs/4.tlog-proof: does not prove entry 4"},
		{name: "proof hash", tamper: func(t *testing.T, dir string) {
			b := mustRead(t, dir, "proofs/6.tlog-proof")
			lines := strings.Split(string(b), "\n")
			c := "A"
			if lines[2][0] == 'A' {
				c = "B"
			}
			lines[2] = c + lines[2][1:]
			os.WriteFile(filepath.Join(dir, "proofs/6.tlog-proof"), []byte(strings.Join(lines, "\n")), 0o600)
			redigest(t, dir, nil)
		}, want: "proofs/6.tlog-proof: does not prove entry 6"},
		{name: "proof index", tamper: func(t *testing.T, dir string) {
			flip(t, dir, "proofs/6.tlog-proof", "index 6\n", "index 06\n")
			redigest(t, dir, nil)
		}, want: "proofs/6.tlog-proof: it is not in canonical"},
		{name: "proof removed", tamper: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "proofs/8.tlog-proof"))
		}, want: "proofs/8.tlog-proof: is listed in manifest.json but missing"},
		{name: "checkpoint byte", tamper: func(t *testing.T, dir string) { flip(t, dir, evCheckpoint, "\n40\n", "\n41\n") },
			want: "checkpoint: its SHA-256"},
		{name: "checkpoint size, manifest redone", tamper: func(t *testing.T, dir string) {
			flip(t, dir, evCheckpoint, "\n40\n", "\n41\n")
			redigest(t, dir, nil)
		}, want: "checkpoint: the checkpoint has an invalid signature"},
		{name: "manifest tree size", tamper: func(t *testing.T, dir string) { flip(t, dir, evManifest, `"tree_size": 40`, `"tree_size": 41`) },
			want: "manifest.json: its tree size 41 is not the checkpoint's 40"},
		{name: "manifest digest", tamper: func(t *testing.T, dir string) {
			m, _ := parseManifest(mustRead(t, dir, evManifest))
			d := m.Files[evEntries]
			flip(t, dir, evManifest, d, d[:10]+string("01"[1-(d[10]&1)])+d[11:])
		}, want: "entries.ndjson: its SHA-256"},
		{name: "manifest whitespace", tamper: func(t *testing.T, dir string) { flip(t, dir, evManifest, `"matches": 10`, `"matches":  10`) },
			want: "manifest.json: it is not in canonical form"},
		{name: "manifest matches", tamper: func(t *testing.T, dir string) { flip(t, dir, evManifest, `"matches": 10`, `"matches": 11`) },
			want: "manifest.json: says 11 matches"},
		{name: "manifest query", tamper: func(t *testing.T, dir string) { flip(t, dir, evManifest, "agent=alice", "agent=alicf") },
			want: "does not match the query"},
		{name: "manifest from moved", tamper: func(t *testing.T, dir string) {
			flip(t, dir, evManifest, "from=2026-03-02T10%3A00", "from=2026-03-02T10%3A30")
		}, want: "entries.ndjson line 1 (entry 4): does not match the query"},
		{name: "manifest to moved", tamper: func(t *testing.T, dir string) {
			flip(t, dir, evManifest, "to=2026-03-02T20%3A00", "to=2026-03-02T19%3A15")
		}, want: "range.ndjson line 21 (entry 23): is the last entry of the range but its time 2026-03-02T19:30:00Z is not before to=2026-03-02T19:15:00Z"},
		{name: "manifest end moved", tamper: func(t *testing.T, dir string) {
			flip(t, dir, evManifest, `"end": 24`, `"end": 25`)
		}, want: "manifest.json: says 22 range entries, but the range [4, 25) with its neighbours has 23"},
		{name: "matching entry dropped, everything redone", tamper: func(t *testing.T, dir string) {
			removeLine(t, dir, evEntries, 12)
			os.Remove(filepath.Join(dir, "proofs/12.tlog-proof"))
			redigest(t, dir, func(m *Manifest) { m.Matches-- })
			resummarize(t, dir)
			redigest(t, dir, nil)
		}, want: "range.ndjson line 10 (entry 12): matches the query but is missing from entries.ndjson"},
		{name: "entry removed from the range", tamper: func(t *testing.T, dir string) {
			removeLine(t, dir, evRange, 13)
			redigest(t, dir, func(m *Manifest) { m.RangeEntries-- })
		}, want: "manifest.json: says 21 range entries"},
		{name: "entry removed from the range, count kept", tamper: func(t *testing.T, dir string) {
			removeLine(t, dir, evRange, 13)
			redigest(t, dir, nil)
		}, want: "range.ndjson: has 21 entries"},
		{name: "range entry changed", tamper: func(t *testing.T, dir string) {
			flip(t, dir, evRange, "customers/13", "customers/14")
			redigest(t, dir, nil)
		}, want: "range.ndjson: is not the log's entries 3 to 24"},
		{name: "range shrunk", tamper: func(t *testing.T, dir string) {
			flip(t, dir, evManifest, `"end": 24`, `"end": 23`)
			removeLine(t, dir, evRange, 24)
			redigest(t, dir, func(m *Manifest) { m.RangeEntries-- })
		}, want: "range/23.tlog-proof: is missing"},
		{name: "summary edited", tamper: func(t *testing.T, dir string) {
			flip(t, dir, evSummary, "alice", "carol")
			redigest(t, dir, nil)
		}, want: "summary.html: differs from the summary of the verified evidence"},
		{name: "extra file", tamper: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hi"), 0o600)
		}, want: "notes.txt: is not listed in manifest.json"},
		{name: "extra file, manifest redone", tamper: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hi"), 0o600)
			redigest(t, dir, nil)
		}, want: "notes.txt: is not part of an evidence export"},
		{name: "bundled log key replaced", tamper: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, evLogPub), []byte(other.LogVKey+"\n"), 0o600)
			redigest(t, dir, nil)
		}, want: "keys/log.pub: is not the log key given to verify"},
		{name: "another log's key", key: other.LogVKey, want: "checkpoint: the checkpoint is not signed by the log key"},
		{name: "quorum not met", policy: mustPolicy(t, fmt.Sprintf("log %s\nwitness w2 %s\nquorum w2\n", tl.keys.LogVKey, other.TimeVKey)),
			want: "checkpoint: does not satisfy the policy: the witness quorum is not met"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ev")
			copyTree(t, good, dir)
			if tc.tamper != nil {
				tc.tamper(t, dir)
			}
			key := tl.keys.LogVKey
			if tc.key != "" {
				key = tc.key
			}
			p := pol
			if tc.policy != nil {
				p = tc.policy
			}
			_, err := Verify(dir, key, p)
			if err == nil {
				t.Fatal("tampered evidence verified")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func mustPolicy(t *testing.T, s string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEvidenceEveryByte flips every byte of every file of a small export
// in turn: verification must fail each time, except for changes to the
// manifest's query that state another query the evidence equally proves.
func TestEvidenceEveryByte(t *testing.T) {
	if testing.Short() {
		t.Skip("verifies the export once per byte")
	}
	tl := newEvTestLog(t)
	for i := 0; i < 4; i++ {
		tl.add(t, "alice", "db.read", fmt.Sprint("customers/", i), evBase.Add(time.Duration(i)*time.Hour))
	}
	tl.publish(t)
	good, _ := tl.export(t, url.Values{"agent": {"alice"}, "from": {"2026-03-02T09:00:00Z"}, "to": {"2026-03-02T10:00:00Z"}}, ExportOptions{LogVKey: tl.keys.LogVKey, TimeVKey: tl.keys.TimeVKey})
	var names []string
	filepath.WalkDir(good, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(good, p)
			names = append(names, rel)
		}
		return nil
	})
	sort.Strings(names)
	dir := filepath.Join(t.TempDir(), "ev")
	copyTree(t, good, dir)
	for _, name := range names {
		orig := mustRead(t, good, name)
		var qStart, qEnd int
		if name == evManifest {
			qStart = bytes.Index(orig, []byte(`"query": "`))
			qEnd = qStart + bytes.IndexByte(orig[qStart+10:], '"') + 10
		}
		for i := range orig {
			b := bytes.Clone(orig)
			b[i] ^= 0x01
			os.WriteFile(filepath.Join(dir, name), b, 0o600)
			_, err := Verify(dir, tl.keys.LogVKey, nil)
			if err == nil && !(name == evManifest && i > qStart && i < qEnd) {
				t.Errorf("%s: flipping byte %d (%q) went unnoticed", name, i, orig[i])
			}
		}
		os.WriteFile(filepath.Join(dir, name), orig, 0o600)
	}
	if _, err := Verify(dir, tl.keys.LogVKey, nil); err != nil {
		t.Fatal(err)
	}
}

func TestEvidenceExportRefuses(t *testing.T) {
	tl := newEvTestLog(t)
	tl.fill(t)
	ctx := context.Background()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o600)
	if _, err := Export(ctx, tl.c, url.Values{}, dir, ExportOptions{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("export into a non-empty directory: %v", err)
	}
	for _, q := range []url.Values{{"limit": {"3"}}, {"agent": {"a", "b"}}, {"from": {"yesterday"}}, {"nope": {"1"}}} {
		if _, err := Export(ctx, tl.c, q, filepath.Join(t.TempDir(), "e"), ExportOptions{}); err == nil {
			t.Errorf("export with query %v succeeded", q)
		}
	}
	other, _, _ := checkpoint.LoadOrCreateKeys(t.TempDir(), "evidence.test/log")
	if _, err := Export(ctx, tl.c, url.Values{}, filepath.Join(t.TempDir(), "e"), ExportOptions{LogVKey: other.LogVKey}); err == nil {
		t.Error("export with another log's key succeeded")
	}
	out := filepath.Join(t.TempDir(), "e")
	if _, err := Export(ctx, tl.c, url.Values{}, out, ExportOptions{LogVKey: tl.keys.LogVKey, Policy: []byte(fmt.Sprintf("log %s\nwitness w2 %s\nquorum w2\n", tl.keys.LogVKey, other.TimeVKey))}); err == nil {
		t.Error("export with an unmet quorum succeeded")
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed export left %s behind", out)
	}
	// Without keys the export still checks proofs, and verifies later.
	out, ev := tl.export(t, url.Values{"agent": {"bob"}}, ExportOptions{})
	if ev.Manifest.Matches != 20 {
		t.Errorf("%d matches", ev.Manifest.Matches)
	}
	if _, err := Verify(out, tl.keys.LogVKey, nil); err != nil {
		t.Error(err)
	}
}

// TestEvidenceExportPages exports more matches and range entries than
// one query page holds while the log keeps growing.
func TestEvidenceExportPages(t *testing.T) {
	defer func(n int) { queryPageLimit = n }(queryPageLimit)
	queryPageLimit = 7
	tl := newEvTestLog(t)
	tl.fill(t)
	tl.add(t, "alice", "after the checkpoint", "y", evBase.Add(24*time.Hour))
	q := url.Values{"agent": {"alice"}, "from": {"2026-03-02T09:00:00Z"}}
	dir, ev := tl.export(t, q, ExportOptions{LogVKey: tl.keys.LogVKey})
	if m := ev.Manifest; m.Matches != 19 || m.TreeSize != 40 || m.Start != 2 || m.End != 40 || m.RangeEntries != 39 {
		t.Errorf("manifest %+v", ev.Manifest)
	}
	if _, err := Verify(dir, tl.keys.LogVKey, nil); err != nil {
		t.Fatal(err)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
