package console_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// runShared is the page's side of TestConsoleSharedVectors: each vector of
// testdata/vectors run through the console's own modules (/console/verify.js
// and the SDK copy under /console/sdk/ it imports), with what came out: ""
// or the VerificationError's reason, and for checkpoints the size, root and
// cosigners.
const runShared = `(async (f) => {
  const v = await import("/console/verify.js");
  const sdk = await import("/console/sdk/verify.js");
  const out = [];
  const run = async (file, name, fn) => {
    try {
      const r = (await fn()) || {};
      out.push({ file, name, reason: "", ...r });
    } catch (e) {
      out.push({ file, name, reason: e instanceof sdk.VerificationError ? e.reason : "not a VerificationError: " + e });
    }
  };
  const keys = (file, c) => {
    const k = c.policy ? { policy: file.policies[c.policy] } : { logKey: file.log_vkey };
    if (c.time_key) k.timeKey = c.time_vkey || file.time_vkey;
    return k;
  };
  for (const name of ["checkpoints.json", "witness_keys.json"]) {
    const file = f[name];
    for (const c of file.vectors) {
      await run(name, c.name, async () => {
        const cp = await sdk.verifyCheckpoint(c.checkpoint, keys(file, c));
        return { size: String(cp.size), root: v.b64encode(cp.root), cosigners: cp.cosigners, time: cp.time ?? 0 };
      });
      // The console's own path (the pinned keys, no policy) gives the same verdict.
      if (!c.policy) {
        await run(name + " openCheckpoint", c.name, async () => {
          const logKey = await v.parseVerifierKey(file.log_vkey);
          const timeKey = c.time_key ? await v.parseVerifierKey(c.time_vkey || file.time_vkey) : null;
          const cp = await v.openCheckpoint(c.checkpoint, { logKey, timeKey });
          return { size: String(cp.size), root: v.b64encode(cp.root), time: cp.time ?? 0 };
        });
      }
    }
  }
  for (const c of f["witness_keys.json"].keys) await run("witness_keys.json keys", c.name, () => sdk.parsePolicy(c.policy).then(() => {}));
  for (const c of f["tlog_proofs.json"].vectors) {
    await run("tlog_proofs.json", c.name, () => sdk.verifyTLogProof(c.proof, c.entry, { ...keys(f["tlog_proofs.json"], { policy: c.policy, time_key: true }), index: BigInt(c.index) }).then(() => {}));
  }
  for (const c of f["inclusion.json"].vectors) {
    await run("inclusion.json", c.name, () => v.verifyInclusion(BigInt(c.index), BigInt(c.size), v.b64decode(c.leaf_hash), c.proof.map(v.b64decode), v.b64decode(c.root)));
  }
  for (const c of f["consistency.json"].vectors) {
    await run("consistency.json", c.name, () => v.verifyConsistency(BigInt(c.old), BigInt(c.size), c.proof.map(v.b64decode), v.b64decode(c.old_root), v.b64decode(c.root)));
  }
  for (const c of f["leaf_hashes.json"].vectors) {
    await run("leaf_hashes.json", c.name, async () => ({ hash: v.b64encode(await v.leafHash(v.b64decode(c.leaf))) }));
  }
  for (const c of f["records.json"].leaves) {
    await run("records.json", c.name, () => sdk.verifyLeafSignature(c.leaf, v.b64decode(c.public_key)));
  }
  return out;
})`

// TestConsoleSharedVectors runs the shared vectors of testdata/vectors in
// Chromium, through the modules the console serves: every valid vector is
// accepted with what it must yield, every invalid one refused with its
// reason, as the Go, Python and TypeScript clients do.
func TestConsoleSharedVectors(t *testing.T) {
	s := newStack(t)
	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(s.hs.URL+"/console/"))
	type vec struct {
		Name      string   `json:"name"`
		Valid     *bool    `json:"valid"`
		Reason    string   `json:"reason"`
		SDKReason string   `json:"sdk_reason"` // a key Go verifies and the SDK refuses
		Size      *uint64  `json:"size"`
		Root      string   `json:"root"`
		Time      int64    `json:"time"`
		Cosigners []string `json:"cosigners"`
		Hash      string   `json:"hash"`
		TimeKey   bool     `json:"time_key"`
		Policy    string   `json:"policy"`
	}
	files := map[string]json.RawMessage{}
	want := map[string]vec{} // by file and name
	for _, name := range []string{"checkpoints.json", "witness_keys.json", "tlog_proofs.json", "inclusion.json", "consistency.json", "leaf_hashes.json", "records.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "vectors", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
		var f struct{ Vectors, Leaves, Keys []vec }
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, v := range f.Vectors {
			want[name+"\x00"+v.Name] = v
			if !strings.Contains(name, "proof") && v.Policy == "" && (name == "checkpoints.json" || name == "witness_keys.json") {
				want[name+" openCheckpoint\x00"+v.Name] = v
			}
		}
		for _, v := range f.Leaves {
			want[name+"\x00"+v.Name] = v
		}
		for _, v := range f.Keys {
			want[name+" keys\x00"+v.Name] = v
		}
	}
	arg, _ := json.Marshal(files)
	type result struct {
		File, Name, Reason, Root, Hash, Size string
		Cosigners                            []string
		Time                                 int64
	}
	got := eval[[]result](t, ctx, runShared+"("+string(arg)+")")
	if len(got) != len(want) {
		t.Errorf("the page ran %d vectors, want %d", len(got), len(want))
	}
	n := map[string]int{}
	for _, r := range got {
		key := r.File + "\x00" + r.Name
		w, ok := want[key]
		if !ok {
			t.Errorf("%s: %s: not a vector", r.File, r.Name)
			continue
		}
		delete(want, key)
		n[strings.Fields(r.File)[0]]++
		valid := w.Valid == nil || *w.Valid // leaf_hashes.json vectors are all valid
		if w.SDKReason != "" {
			valid, w.Reason = false, w.SDKReason
		}
		if !strings.Contains(r.File, "checkpoints") && !strings.HasPrefix(r.File, "witness_keys.json") || strings.HasSuffix(r.File, "keys") {
			w.Size = nil // what a checkpoint yields; proof vectors give sizes as input
		}
		switch {
		case valid && r.Reason != "":
			t.Errorf("%s: %s: refused (%s)", r.File, r.Name, r.Reason)
		case !valid && r.Reason != w.Reason:
			t.Errorf("%s: %s: reason %q, want %q", r.File, r.Name, r.Reason, w.Reason)
		case w.Hash != "" && r.Hash != w.Hash:
			t.Errorf("%s: %s: hash %s, want %s", r.File, r.Name, r.Hash, w.Hash)
		case valid && w.Size != nil && (r.Size != jsonNumber(*w.Size) || r.Root != w.Root):
			t.Errorf("%s: %s: size %s root %s, want %d %s", r.File, r.Name, r.Size, r.Root, *w.Size, w.Root)
		case valid && w.Size != nil && w.TimeKey && r.Time != w.Time:
			t.Errorf("%s: %s: time %d, want %d", r.File, r.Name, r.Time, w.Time)
		case valid && w.Size != nil && !strings.HasSuffix(r.File, "openCheckpoint") && !slices.Equal(r.Cosigners, nonNil(w.Cosigners)):
			t.Errorf("%s: %s: cosigners %v, want %v", r.File, r.Name, r.Cosigners, w.Cosigners)
		}
	}
	for k := range want {
		t.Errorf("not run in the page: %s", strings.ReplaceAll(k, "\x00", ": "))
	}
	t.Logf("vectors run in Chromium: %v", n)
}

func jsonNumber(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
