package console_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
)

// vector is one case for verify.js: kind "inclusion" (index, size, leaf
// hash, proof, root) or "consistency" (size1, size2, proof, root1, root2),
// and whether it must verify.
type vector struct {
	Name   string   `json:"name"`
	Kind   string   `json:"kind"`
	Index  uint64   `json:"index,omitempty"`
	Size   uint64   `json:"size,omitempty"`
	Size1  uint64   `json:"size1,omitempty"`
	Leaf   []byte   `json:"leaf,omitempty"` // leaf data; the browser hashes it
	LeafH  []byte   `json:"leaf_hash,omitempty"`
	Proof  [][]byte `json:"proof"`
	Root   []byte   `json:"root,omitempty"`
	Root1  []byte   `json:"root1,omitempty"`
	Want   bool     `json:"want"`
	Reason string   `json:"reason,omitempty"`
}

// hashStore is an in-memory tlog.HashReader.
type hashStore []tlog.Hash

func (s hashStore) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = s[x]
	}
	return out, nil
}

func clone(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = append([]byte(nil), h...)
	}
	return out
}

// randomTreeVectors builds random trees with x/mod's tlog (an independent
// RFC 6962 implementation) and returns proofs and corrupted variants.
func randomTreeVectors(t *testing.T, r *mrand.Rand) []vector {
	var out []vector
	var store hashStore
	var leaves [][]byte
	sizes := []int64{1, 2, 3, 4, 5, 7, 8, 9, 255, 256, 257, 300}
	for range 6 {
		sizes = append(sizes, 1+r.Int64N(1200))
	}
	maxSize := int64(0)
	for _, n := range sizes {
		maxSize = max(maxSize, n)
	}
	for i := int64(0); i < maxSize; i++ {
		leaf := make([]byte, r.IntN(64))
		rand.Read(leaf)
		leaves = append(leaves, leaf)
		hs, err := tlog.StoredHashes(i, leaf, store)
		if err != nil {
			t.Fatal(err)
		}
		store = append(store, hs...)
	}
	toBytes := func(p []tlog.Hash) [][]byte {
		out := make([][]byte, len(p))
		for i := range p {
			out[i] = append([]byte(nil), p[i][:]...)
		}
		return out
	}
	for _, n := range sizes {
		root, err := tlog.TreeHash(n, store)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			i := r.Int64N(n)
			p, err := tlog.ProveRecord(n, i, store)
			if err != nil {
				t.Fatal(err)
			}
			good := vector{Name: fmt.Sprintf("inclusion %d in %d", i, n), Kind: "inclusion", Index: uint64(i), Size: uint64(n), Leaf: leaves[i], Proof: toBytes(p), Root: root[:], Want: true}
			out = append(out, good)
			if len(p) > 0 {
				bad := good
				bad.Proof = clone(good.Proof)
				k := r.IntN(len(p))
				bad.Proof[k][r.IntN(32)] ^= 1 << r.IntN(8)
				bad.Want, bad.Reason = false, "flipped bit"
				out = append(out, bad)
				bad2 := good
				bad2.Proof = good.Proof[:len(p)-1]
				bad2.Want, bad2.Reason = false, "truncated"
				out = append(out, bad2)
			}
			bad3 := good
			bad3.Leaf = append([]byte{1}, good.Leaf...)
			bad3.Want, bad3.Reason = false, "other leaf"
			out = append(out, bad3)
			if n > 1 {
				bad4 := good
				bad4.Index = uint64((i + 1) % n)
				if p2, _ := tlog.ProveRecord(n, int64(bad4.Index), store); !equalProofs(toBytes(p2), good.Proof) {
					bad4.Want, bad4.Reason = false, "other index"
					out = append(out, bad4)
				}
			}
		}
		for range 3 {
			m := 1 + r.Int64N(n)
			p, err := tlog.ProveTree(n, m, store)
			if err != nil {
				t.Fatal(err)
			}
			root1, _ := tlog.TreeHash(m, store)
			good := vector{Name: fmt.Sprintf("consistency %d to %d", m, n), Kind: "consistency", Size1: uint64(m), Size: uint64(n), Proof: toBytes(p), Root1: root1[:], Root: root[:], Want: true}
			out = append(out, good)
			if len(p) > 0 {
				bad := good
				bad.Proof = clone(good.Proof)
				bad.Proof[r.IntN(len(p))][r.IntN(32)] ^= 1 << r.IntN(8)
				bad.Want, bad.Reason = false, "flipped bit"
				out = append(out, bad)
			}
			bad2 := good
			bad2.Root1 = append([]byte(nil), root1[:]...)
			bad2.Root1[0] ^= 0x80
			bad2.Want, bad2.Reason = false, "other old root"
			out = append(out, bad2)
		}
	}
	return out
}

func equalProofs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i]) != string(b[i]) {
			return false
		}
	}
	return true
}

// merkleVectors reads transparency-dev/merkle's vectors in testdata/merkle.
func merkleVectors(t *testing.T) []vector {
	var out []vector
	files, _ := filepath.Glob("../../testdata/merkle/*/*/*.json")
	if len(files) == 0 {
		t.Fatal("no vectors in testdata/merkle")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			LeafIdx  uint64   `json:"leafIdx"`
			TreeSize uint64   `json:"treeSize"`
			Root     []byte   `json:"root"`
			LeafHash []byte   `json:"leafHash"`
			Size1    uint64   `json:"size1"`
			Size2    uint64   `json:"size2"`
			Root1    []byte   `json:"root1"`
			Root2    []byte   `json:"root2"`
			Proof    [][]byte `json:"proof"`
			WantErr  bool     `json:"wantErr"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := strings.TrimPrefix(f, "../../testdata/merkle/")
		if strings.Contains(f, "/inclusion/") {
			out = append(out, vector{Name: name, Kind: "inclusion", Index: v.LeafIdx, Size: v.TreeSize, LeafH: v.LeafHash, Proof: v.Proof, Root: v.Root, Want: !v.WantErr})
		} else {
			out = append(out, vector{Name: name, Kind: "consistency", Size1: v.Size1, Size: v.Size2, Proof: v.Proof, Root1: v.Root1, Root: v.Root2, Want: !v.WantErr})
		}
	}
	return out
}

const runVectors = `(async (vectors) => {
  const v = await import("/console/verify.js");
  const b = (s) => (s ? v.b64decode(s) : new Uint8Array());
  const bad = [];
  for (const x of vectors) {
    let ok = true, msg = "";
    try {
      const proof = (x.proof || []).map(v.b64decode);
      if (x.kind === "inclusion") {
        const lh = x.leaf_hash ? b(x.leaf_hash) : await v.leafHash(b(x.leaf));
        await v.verifyInclusion(x.index || 0, x.size || 0, lh, proof, b(x.root));
      } else {
        await v.verifyConsistency(x.size1 || 0, x.size || 0, proof, b(x.root1), b(x.root));
      }
    } catch (e) {
      if (!(e instanceof v.VerifyError)) msg = "not a VerifyError: ";
      ok = false;
      msg += e.message;
    }
    if (ok !== x.want || msg.startsWith("not a")) bad.push(x.name + " (" + (x.reason || "valid") + "): got " + (ok ? "accepted" : "rejected: " + msg));
  }
  return bad;
})`

// TestVerifyModuleProofs runs verify.js in Chromium over random trees built
// with x/mod's tlog and over transparency-dev/merkle's vectors: it accepts
// every valid proof and rejects every corrupted one.
func TestVerifyModuleProofs(t *testing.T) {
	s := newStack(t)
	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(s.hs.URL+"/console/"))
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	vecs := append(randomTreeVectors(t, mrand.New(mrand.NewPCG(seed, 1))), merkleVectors(t)...)
	js, _ := json.Marshal(vecs)
	bad := eval[[]string](t, ctx, runVectors+"("+string(js)+")")
	for _, b := range bad {
		t.Error(b)
	}
	t.Logf("%d vectors", len(vecs))
}

// TestVerifyModuleCheckpoints checks openCheckpoint against checkpoints
// signed by package checkpoint: the log signature, the timestamp and its
// time, witness cosignatures pinned or not, and what must be refused.
func TestVerifyModuleCheckpoints(t *testing.T) {
	s := newStack(t)
	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(s.hs.URL+"/console/"))
	root := make([]byte, 32)
	rand.Read(root)
	at := time.Date(2026, 11, 28, 3, 4, 5, 0, time.UTC)
	raw, err := checkpoint.SignAt(s.keys, 12345, root, at)
	if err != nil {
		t.Fatal(err)
	}
	// A witness cosignature (cosignature v1) added to the same note.
	wskey, wvkey, err := checkpoint.GenerateTimeKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := checkpoint.NewTimeSigner(wskey, func() time.Time { return at.Add(time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(raw, note.VerifierList(s.keys.LogVerifier))
	if err != nil {
		t.Fatal(err)
	}
	witnessed, err := note.Sign(&note.Note{Text: n.Text, Sigs: append(n.Sigs, n.UnverifiedSigs...)}, ws)
	if err != nil {
		t.Fatal(err)
	}
	other, err := checkpoint.SignAt(s.other, 12345, root, at)
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(strings.Clone(string(raw)))
	// Corrupt the log's signature: a character of its base64, which still decodes.
	line := strings.Index(string(flipped), "\u2014 "+origin+" ")
	pos := line + len("\u2014 "+origin+" ") + 20
	if flipped[pos] == 'A' {
		flipped[pos] = 'B'
	} else {
		flipped[pos] = 'A'
	}
	cases := []struct {
		name, raw   string
		witnessKeys []string
		want        string // "" to accept, else the reason
	}{
		{"log and timestamp", string(raw), nil, ""},
		{"unpinned witness listed", string(witnessed), nil, ""},
		{"pinned witness verified", string(witnessed), []string{wvkey}, ""},
		// want is the reason code (testdata/vectors/README.md). A body
		// changed after signing fails its signature first, as in the Go
		// client; the shared vectors (TestConsoleSharedVectors) have signed
		// non-canonical bodies and extension lines.
		{"other key", string(other), nil, "no-log-signature"},
		{"corrupted log signature", string(flipped), nil, "bad-signature"},
		{"body changed", strings.Replace(string(raw), "\n12345\n", "\n12346\n", 1), nil, "bad-signature"},
		{"leading zero", strings.Replace(string(raw), "\n12345\n", "\n012345\n", 1), nil, "bad-signature"},
		{"no signatures", n.Text + "\n", nil, "malformed"},
		{"extension line", strings.Replace(string(raw), "\n\n", "\nextra\n\n", 1), nil, "bad-signature"},
	}
	const open = `(async (c) => {
  const v = await import("/console/verify.js");
  const keys = { logKey: await v.parseVerifierKey(c.log), timeKey: await v.parseVerifierKey(c.time), witnesses: [] };
  for (const w of c.witnesses || []) keys.witnesses.push(await v.parseVerifierKey(w));
  try {
    const cp = await v.openCheckpoint(c.raw, keys);
    return { ok: true, size: String(cp.size), root: v.b64encode(cp.root), time: cp.time, origin: cp.origin, sigs: cp.signatures };
  } catch (e) {
    return { ok: false, error: e.message, reason: e.reason };
  }
})`
	type sig struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		Verified bool   `json:"verified"`
		Time     *int64 `json:"time"`
	}
	type result struct {
		OK     bool   `json:"ok"`
		Error  string `json:"error"`
		Reason string `json:"reason"`
		Size   string `json:"size"`
		Root   []byte `json:"root"`
		Time   int64  `json:"time"`
		Origin string `json:"origin"`
		Sigs   []sig  `json:"sigs"`
	}
	for _, c := range cases {
		arg, _ := json.Marshal(map[string]any{"raw": c.raw, "log": s.keys.LogVKey, "time": s.keys.TimeVKey, "witnesses": c.witnessKeys})
		js := eval[json.RawMessage](t, ctx, open+"("+string(arg)+")")
		var r result
		if err := json.Unmarshal(js, &r); err != nil {
			t.Fatalf("%s: %v: %s", c.name, err, js)
		}
		if c.want != "" {
			if r.OK || r.Reason != c.want {
				t.Errorf("%s: got ok=%v %s (%q), want reason %s", c.name, r.OK, r.Reason, r.Error, c.want)
			}
			continue
		}
		if !r.OK {
			t.Errorf("%s: refused: %s", c.name, r.Error)
			continue
		}
		if r.Size != "12345" || string(r.Root) != string(root) || r.Time != at.Unix() || r.Origin != origin {
			t.Errorf("%s: got size %s root %x time %d origin %s", c.name, r.Size, r.Root, r.Time, r.Origin)
		}
		roles := map[string]sig{}
		for _, s := range r.Sigs {
			roles[s.Role] = s
		}
		if !roles["log"].Verified || !roles["timestamp"].Verified {
			t.Errorf("%s: signatures %+v", c.name, r.Sigs)
		}
		if c.raw == string(witnessed) {
			w := roles["witness"]
			if w.Name != "witness.example/w1" || w.Time == nil || *w.Time != at.Unix()+1 || w.Verified != (c.witnessKeys != nil) {
				t.Errorf("%s: witness signature %+v", c.name, w)
			}
		}
	}
}

// TestVerifyModuleBundlePaths checks verify.js's entry-bundle paths and
// bundle parsing against package agentlog's tile paths.
func TestVerifyModuleBundlePaths(t *testing.T) {
	s := newStack(t)
	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(s.hs.URL+"/console/"))
	type c struct {
		Index uint64 `json:"index,string"` // strings: JSON numbers lose precision above 2^53 in JavaScript
		Size  uint64 `json:"size,string"`
		Want  string `json:"want"`
	}
	var cases []c
	for _, x := range [][2]uint64{{0, 1}, {0, 256}, {255, 256}, {256, 257}, {255, 300}, {1000 * 256, 1000*256 + 5}, {1234067 * 256, 1234067*256 + 256}, {1<<40 + 3, 1<<40 + 700}, {1<<63 - 2, 1<<63 - 1}} {
		n := x[0] / 256
		p := agentlog.TilePath{Index: n, Width: agentlog.TileWidthAt(0, n, x[1]), Entries: true}
		cases = append(cases, c{x[0], x[1], p.String()})
	}
	js, _ := json.Marshal(cases)
	bad := eval[[]string](t, ctx, `(async (cases) => {
  const v = await import("/console/verify.js");
  const bad = [];
  for (const c of cases) {
    const got = v.bundlePath(BigInt(c.index), BigInt(c.size));
    if (got !== c.want) bad.push(c.index + " in " + c.size + ": " + got + ", want " + c.want);
  }
  const b = v.parseBundle(Uint8Array.of(0, 1, 65, 0, 0, 0, 2, 66, 67));
  if (b.length !== 3 || b[0][0] !== 65 || b[1].length !== 0 || b[2][1] !== 67) bad.push("parseBundle");
  try { v.parseBundle(Uint8Array.of(0, 5, 1)); bad.push("truncated bundle accepted"); } catch (e) {}
  return bad;
})(`+string(js)+`)`)
	for _, b := range bad {
		t.Error(b)
	}
}
