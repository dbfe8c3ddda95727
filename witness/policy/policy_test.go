package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/witness/witnesstest"
	"golang.org/x/mod/sumdb/note"
)

func TestParsePolicy(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	var wk [4]string
	for i := range wk {
		_, wk[i] = newTestSigner(t, fmt.Sprintf("w%d.example", i))
	}
	ok := []struct {
		name, text string
		check      func(*Policy) bool
	}{
		{"none", "quorum none\n", func(p *Policy) bool { return p.Quorum == nil && len(p.Logs) == 0 }},
		{"single witness", fmt.Sprintf("log %s https://log.example\nwitness A %s https://a.example\nquorum A", lg.VKey, wk[0]),
			func(p *Policy) bool {
				return p.Logs[0].URL == "https://log.example" && p.Witnesses[0].URL == "https://a.example" &&
					p.Quorum.K == 1 && p.Quorum.Members[0].Witness == p.Witnesses[0]
			}},
		{"comments, tabs, blank lines", fmt.Sprintf("# policy\n\n  log\t%s  \n\t# w\nwitness A %s\nwitness B %s\ngroup G any A B\nquorum G\n", lg.VKey, wk[0], wk[1]),
			func(p *Policy) bool { return p.Quorum.Name == "G" && p.Quorum.K == 1 }},
		{"nested groups", fmt.Sprintf("witness A %s\nwitness B %s\nwitness C %s\nwitness D %s\ngroup X 2 A B C\ngroup Y all X D\nquorum Y\n", wk[0], wk[1], wk[2], wk[3]),
			func(p *Policy) bool { return p.Quorum.K == 2 && p.Quorum.Members[0].Group.K == 2 }},
	}
	for _, c := range ok {
		p, err := Parse([]byte(c.text))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !c.check(p) {
			t.Errorf("%s: unexpected policy %+v", c.name, p)
		}
	}
	bad := []struct{ name, text string }{
		{"empty", ""},
		{"no quorum", fmt.Sprintf("log %s\n", lg.VKey)},
		{"two quorums", "quorum none\nquorum none\n"},
		{"undefined quorum", "quorum A\n"},
		{"quorum before witness", fmt.Sprintf("quorum A\nwitness A %s\n", wk[0])},
		{"group forward reference", fmt.Sprintf("group G any A\nwitness A %s\nquorum G\n", wk[0])},
		{"duplicate name", fmt.Sprintf("witness A %s\nwitness A %s\nquorum A\n", wk[0], wk[1])},
		{"duplicate witness key", fmt.Sprintf("witness A %s\nwitness B %s\nquorum A\n", wk[0], wk[0])},
		{"duplicate log key", fmt.Sprintf("log %s\nlog %s\nquorum none\n", lg.VKey, lg.VKey)},
		{"reserved name", fmt.Sprintf("witness none %s\nquorum none\n", wk[0])},
		{"member twice", fmt.Sprintf("witness A %s\ngroup G any A A\nquorum G\n", wk[0])},
		{"k too large", fmt.Sprintf("witness A %s\ngroup G 2 A\nquorum G\n", wk[0])},
		{"k zero", fmt.Sprintf("witness A %s\ngroup G 0 A\nquorum G\n", wk[0])},
		{"k leading zero", fmt.Sprintf("witness A %s\nwitness B %s\ngroup G 01 A B\nquorum G\n", wk[0], wk[1])},
		{"group without members", "group G any\nquorum none\n"},
		{"bad key", "witness A nope\nquorum A\n"},
		{"unknown keyword", "quorum none\ntrust me\n"},
		{"control character", "quorum none\r\n"},
		{"extra field", fmt.Sprintf("witness A %s url extra\nquorum A\n", wk[0])},
	}
	for _, c := range bad {
		if p, err := Parse([]byte(c.text)); err == nil {
			t.Errorf("%s: accepted %+v", c.name, p)
		}
	}
}

func TestPolicyVerify(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.Grow(3, "a")
	var signers [3]note.Signer
	var vkeys [3]string
	for i := range signers {
		signers[i], vkeys[i] = newTestSigner(t, fmt.Sprintf("w%d.example", i))
	}
	p, err := Parse(fmt.Appendf(nil, "log %s\nwitness A %s\nwitness B %s\nwitness C %s\ngroup Q 2 A B C\nquorum Q\n",
		lg.VKey, vkeys[0], vkeys[1], vkeys[2]))
	if err != nil {
		t.Fatal(err)
	}
	root := lg.Root(3)
	cases := []struct {
		name    string
		raw     []byte
		wantErr error // nil, ErrQuorum, or errAny
	}{
		{"log only", lg.Sign(3, root, lg.Signer), ErrQuorum},
		{"one witness", lg.Sign(3, root, lg.Signer, signers[0]), ErrQuorum},
		{"two witnesses", lg.Sign(3, root, lg.Signer, signers[0], signers[2]), nil},
		{"three witnesses", lg.Sign(3, root, lg.Signer, signers[0], signers[1], signers[2]), nil},
		{"one good, one bad cosignature", lg.Sign(3, root, lg.Signer, signers[0], witnesstest.CorruptSigner{Signer: signers[1]}), ErrQuorum},
		{"witnesses without the log", lg.Sign(3, root, signers[0], signers[1]), errAny},
		{"another log key", func() []byte { o := newTestLog(t, lg.Origin); return o.Sign(3, root, o.Signer, signers[0], signers[1]) }(), errAny},
	}
	for _, c := range cases {
		v, err := p.Verify(c.raw)
		switch {
		case c.wantErr == nil && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr == nil:
			if v.Size != 3 || string(v.Root) != string(root) || v.Log != p.Logs[0] {
				t.Errorf("%s: %+v", c.name, v)
			}
		case c.wantErr == ErrQuorum && !errors.Is(err, ErrQuorum):
			t.Errorf("%s: got %v, want ErrQuorum", c.name, err)
		case err == nil:
			t.Errorf("%s: verified", c.name)
		}
	}
	none, err := Parse([]byte("log " + lg.VKey + "\nquorum none\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Verify(lg.Sign(3, root, lg.Signer)); err != nil {
		t.Errorf("quorum none: %v", err)
	}
}

var errAny = errors.New("any error")

func FuzzParsePolicy(f *testing.F) {
	lg := newTestLog(f, "example.com/log")
	_, wk := newTestSigner(f, "w.example")
	_, wk2 := newTestSigner(f, "w2.example")
	f.Add([]byte("quorum none\n"))
	f.Add(fmt.Appendf(nil, "log %s https://x\nwitness A %s\nwitness B %s\ngroup G 1 A B\ngroup H all G\nquorum H\n", lg.VKey, wk, wk2))
	f.Add([]byte("group a any b\n# c\n\t\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if p.Quorum != nil {
			// Every witness cosigning satisfies any valid quorum; none does not
			// (k >= 1 at every level).
			if !p.QuorumMet(p.Witnesses) {
				t.Fatalf("all witnesses do not satisfy the quorum of %q", b)
			}
			if p.QuorumMet(nil) {
				t.Fatalf("no witness satisfies the quorum of %q", b)
			}
		}
		for _, l := range p.Logs {
			if strings.ContainsAny(l.VKey, " \t\n") {
				t.Fatalf("log key %q has whitespace", l.VKey)
			}
		}
	})
}

func TestRequireLog(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	other := newTestLog(t, "example.com/other")
	for _, tc := range []struct {
		name, text, vkey string
		ok               bool
		logs             int
	}{
		{"no log line, key given", "quorum none\n", lg.VKey, true, 1},
		{"no log line, no key", "quorum none\n", "", false, 0},
		{"the log listed", "log " + lg.VKey + "\nquorum none\n", lg.VKey, true, 1},
		{"the log listed, no key", "log " + lg.VKey + "\nquorum none\n", "", true, 1},
		{"another log listed", "log " + other.VKey + "\nquorum none\n", lg.VKey, false, 1},
		{"not a key", "quorum none\n", "not a key", false, 0},
	} {
		p, err := Parse([]byte(tc.text))
		if err != nil {
			t.Fatal(err)
		}
		err = p.RequireLog(tc.vkey)
		if (err == nil) != tc.ok || len(p.Logs) != tc.logs {
			t.Errorf("%s: RequireLog = %v with %d logs; want ok %v, %d logs", tc.name, err, len(p.Logs), tc.ok, tc.logs)
		}
	}
	// The log added verifies its checkpoints.
	p, _ := Parse([]byte("quorum none\n"))
	if err := p.RequireLog(lg.VKey); err != nil {
		t.Fatal(err)
	}
	lg.Grow(3, "a")
	if _, err := p.Verify(lg.Checkpoint()); err != nil {
		t.Fatalf("a checkpoint of the added log: %v", err)
	}
}
