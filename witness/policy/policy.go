// Package policy reads and applies c2sp.org/tlog-policy files: which log
// keys sign checkpoints, which witnesses cosign them and how many of them
// make a quorum. It depends only on the note formats, so the Go SDK's
// verifiers import it without the witness server.
package policy

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/agentlog/agentlog/checkpoint"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Limits on a policy file. c2sp.org/tlog-policy recommends supporting at
// least 32 logs, 32 witnesses and 32 groups; these are far above that and
// only keep a hostile file from costing much.
const (
	maxPolicyBytes   = 1 << 20
	maxPolicyEntries = 1024 // logs, witnesses and groups, each
)

// A Policy says which checkpoints to trust, in the format of
// c2sp.org/tlog-policy: a checkpoint is valid if one of Logs signed it and
// the witnesses that cosigned it satisfy the quorum.
type Policy struct {
	Logs      []*Log
	Witnesses []*Witness // in the order of the file
	// Quorum is nil for "quorum none": no cosignature is needed.
	Quorum *Group
}

// Log is a "log <vkey> [<url>]" line.
type Log struct {
	VKey     string
	URL      string // empty if not given
	Verifier note.Verifier
}

// Origin is the log's origin line, which is its key name.
func (l *Log) Origin() string { return l.Verifier.Name() }

// Witness is a "witness <name> <vkey> [<url>]" line.
type Witness struct {
	Name     string // the name in the policy, which need not be the key name
	VKey     string
	URL      string // submission prefix of c2sp.org/tlog-witness; empty if not given
	Verifier note.Verifier
}

// A Group is satisfied when at least K of its Members are: a member is a
// witness (which is satisfied when it cosigned) or another group. A single
// witness used as the quorum is a Group with one member and K = 1.
type Group struct {
	Name    string
	K       int
	Members []Member
}

// Member is exactly one of a witness or a group.
type Member struct {
	Witness *Witness
	Group   *Group
}

// satisfied reports whether g is satisfied when the witnesses in cosigned
// have cosigned.
func (g *Group) satisfied(cosigned map[*Witness]bool) bool {
	n := 0
	for _, m := range g.Members {
		if (m.Witness != nil && cosigned[m.Witness]) || (m.Group != nil && m.Group.satisfied(cosigned)) {
			n++
		}
	}
	return n >= g.K
}

// Parse parses a policy in the c2sp.org/tlog-policy format:
//
//	log <vkey> [<url>]
//	witness <name> <vkey> [<url>]
//	group <name> all|any|<k> <name>...
//	quorum <name>|none
//
// Items are separated by spaces and tabs; empty lines and lines starting
// with "#" are ignored. Groups and the quorum may only name witnesses and
// groups defined on earlier lines, each member at most once; there must be
// exactly one quorum line; two logs or two witnesses may not share a public
// key. Log and witness keys are parsed with formats/note.NewVerifier
// (Ed25519, cosignature v1, ML-DSA, ECDSA and RFC 6962 keys).
func Parse(b []byte) (*Policy, error) {
	if len(b) > maxPolicyBytes {
		return nil, fmt.Errorf("policy: %d bytes is more than the %d allowed", len(b), maxPolicyBytes)
	}
	for i, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' || c == 0x7f {
			return nil, fmt.Errorf("policy: control character 0x%02x at byte %d", c, i)
		}
	}
	p := &Policy{}
	names := map[string]any{}   // *Witness or *Group
	keys := map[string]string{} // public key material -> what defined it
	quorumSeen := false
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("policy line %d: %s", i+1, fmt.Sprintf(format, args...))
		}
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "log":
			if len(f) < 2 || len(f) > 3 {
				return nil, fail("want \"log <vkey> [<url>]\"")
			}
			v, pub, err := parseVKey(f[1])
			if err != nil {
				return nil, fail("%v", err)
			}
			if prev, ok := keys[pub]; ok {
				return nil, fail("the log key duplicates the key of %s", prev)
			}
			keys[pub] = "log " + v.Name()
			if len(p.Logs) >= maxPolicyEntries {
				return nil, fail("more than %d logs", maxPolicyEntries)
			}
			l := &Log{VKey: f[1], Verifier: v}
			if len(f) == 3 {
				l.URL = f[2]
			}
			p.Logs = append(p.Logs, l)
		case "witness":
			if len(f) < 3 || len(f) > 4 {
				return nil, fail("want \"witness <name> <vkey> [<url>]\"")
			}
			name := f[1]
			if err := newName(names, name); err != nil {
				return nil, fail("%v", err)
			}
			v, pub, err := parseVKey(f[2])
			if err != nil {
				return nil, fail("%v", err)
			}
			if prev, ok := keys[pub]; ok {
				return nil, fail("the key of witness %q duplicates the key of %s", name, prev)
			}
			keys[pub] = "witness " + name
			if len(p.Witnesses) >= maxPolicyEntries {
				return nil, fail("more than %d witnesses", maxPolicyEntries)
			}
			w := &Witness{Name: name, VKey: f[2], Verifier: v}
			if len(f) == 4 {
				w.URL = f[3]
			}
			p.Witnesses = append(p.Witnesses, w)
			names[name] = w
		case "group":
			if len(f) < 4 {
				return nil, fail("want \"group <name> all|any|<k> <name>...\"")
			}
			name := f[1]
			if err := newName(names, name); err != nil {
				return nil, fail("%v", err)
			}
			g := &Group{Name: name}
			seen := map[string]bool{}
			for _, m := range f[3:] {
				if seen[m] {
					return nil, fail("group %q lists %q twice", name, m)
				}
				seen[m] = true
				switch d := names[m].(type) {
				case *Witness:
					g.Members = append(g.Members, Member{Witness: d})
				case *Group:
					g.Members = append(g.Members, Member{Group: d})
				default:
					return nil, fail("group %q names %q, which no earlier line defines", name, m)
				}
			}
			switch n := len(g.Members); f[2] {
			case "all":
				g.K = n
			case "any":
				g.K = 1
			default:
				k, err := strconv.Atoi(f[2])
				if err != nil || k < 1 || k > n || f[2] != strconv.Itoa(k) {
					return nil, fail("group %q threshold %q: want all, any or a decimal from 1 to %d", name, f[2], n)
				}
				g.K = k
			}
			if countGroups(names) >= maxPolicyEntries {
				return nil, fail("more than %d groups", maxPolicyEntries)
			}
			names[name] = g
		case "quorum":
			if len(f) != 2 {
				return nil, fail("want \"quorum <name>|none\"")
			}
			if quorumSeen {
				return nil, fail("a second quorum line")
			}
			quorumSeen = true
			switch d := names[f[1]].(type) {
			case *Witness:
				p.Quorum = &Group{Name: d.Name, K: 1, Members: []Member{{Witness: d}}}
			case *Group:
				p.Quorum = d
			default:
				if f[1] != "none" {
					return nil, fail("quorum %q names nothing defined on an earlier line", f[1])
				}
			}
		default:
			return nil, fail("unknown keyword %q", f[0])
		}
	}
	if !quorumSeen {
		return nil, errors.New("policy: no quorum line (write \"quorum none\" to need no witness)")
	}
	return p, nil
}

func newName(names map[string]any, name string) error {
	if name == "none" {
		return errors.New(`"none" is reserved`)
	}
	if _, ok := names[name]; ok {
		return fmt.Errorf("%q is already defined", name)
	}
	return nil
}

func countGroups(names map[string]any) int {
	n := 0
	for _, d := range names {
		if _, ok := d.(*Group); ok {
			n++
		}
	}
	return n
}

// parseVKey parses a verifier key and returns it with its public key
// material (the bytes after the type byte), which identifies duplicates.
func parseVKey(vkey string) (note.Verifier, string, error) {
	v, err := fnote.NewVerifier(vkey)
	if err != nil {
		return nil, "", fmt.Errorf("bad verifier key %q: %v", vkey, err)
	}
	parts := strings.SplitN(vkey, "+", 3)
	key, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(key) < 2 {
		return nil, "", fmt.Errorf("bad verifier key %q", vkey)
	}
	return v, string(key[1:]), nil
}

// Verified is a checkpoint that satisfied a [Policy].
type Verified struct {
	Log       *Log       // the log whose signature verified
	Text      []byte     // the checkpoint body (origin, size, root, extensions)
	Origin    string     // first line of Text
	Size      uint64     // tree size
	Root      []byte     // root hash
	Cosigners []*Witness // witnesses of the policy whose cosignature verified
}

// ErrQuorum is wrapped by the error of [Policy.Verify] when the checkpoint
// is signed by a log of the policy but not cosigned by enough witnesses.
var ErrQuorum = errors.New("the witness quorum is not met")

// Verify checks that raw, a signed checkpoint, is signed by one of the
// policy's logs (whose key name must be the origin) and cosigned by
// witnesses satisfying the quorum. Signatures by keys outside the policy are
// ignored, and so are cosignatures that do not verify: they cannot help
// meet the quorum.
func (p *Policy) Verify(raw []byte) (*Verified, error) {
	if len(raw) > checkpoint.MaxSize {
		return nil, fmt.Errorf("the checkpoint is %d bytes, more than the %d allowed", len(raw), checkpoint.MaxSize)
	}
	vs := make([]note.Verifier, len(p.Logs))
	for i, l := range p.Logs {
		vs[i] = l.Verifier
	}
	n, err := note.Open(raw, note.VerifierList(vs...))
	if err != nil {
		return nil, fmt.Errorf("the checkpoint is not validly signed by a log of the policy: %w", err)
	}
	origin, _, _ := strings.Cut(n.Text, "\n")
	v := &Verified{Text: []byte(n.Text), Origin: origin}
	for _, s := range n.Sigs {
		for _, l := range p.Logs {
			if s.Name == l.Verifier.Name() && s.Hash == l.Verifier.KeyHash() && l.Origin() == origin {
				v.Log = l
			}
		}
	}
	if v.Log == nil {
		return nil, fmt.Errorf("the checkpoint of origin %q is not signed by a log key of that name in the policy", origin)
	}
	cp, err := checkpoint.ParseBody(v.Text)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint body is malformed: %w", err)
	}
	v.Size, v.Root = cp.Size, cp.Hash
	cosigned := map[*Witness]bool{}
	for _, s := range n.UnverifiedSigs {
		sig, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil || len(sig) < 5 {
			continue
		}
		for _, w := range p.Witnesses {
			if cosigned[w] || s.Name != w.Verifier.Name() || s.Hash != w.Verifier.KeyHash() {
				continue
			}
			if w.Verifier.Verify(v.Text, sig[4:]) {
				cosigned[w] = true
				v.Cosigners = append(v.Cosigners, w)
			}
		}
	}
	if p.Quorum != nil && !p.Quorum.satisfied(cosigned) {
		return v, fmt.Errorf("%w: checkpoint %s size %d has valid cosignatures from %d witnesses of the policy",
			ErrQuorum, origin, v.Size, len(v.Cosigners))
	}
	return v, nil
}

// QuorumMet reports whether the witnesses in cosigned satisfy the quorum.
func (p *Policy) QuorumMet(cosigned []*Witness) bool {
	if p.Quorum == nil {
		return true
	}
	m := map[*Witness]bool{}
	for _, w := range cosigned {
		m[w] = true
	}
	return p.Quorum.satisfied(m)
}

// RequireLog applies the one rule of which logs a policy must name, for
// every reader of a policy (audit, monitor, verify, evidence, serve): a
// policy may leave out log lines, and then the log whose note verifier key
// is vkey is its one log; a policy that lists logs must list vkey. With
// vkey empty (the log's key is not known), the policy must list a log.
func (p *Policy) RequireLog(vkey string) error {
	vkey = strings.TrimSpace(vkey)
	if vkey == "" {
		if len(p.Logs) == 0 {
			return errors.New(`the policy has no log line: add "log <vkey>" or give the log's key`)
		}
		return nil
	}
	for _, l := range p.Logs {
		if l.VKey == vkey {
			return nil
		}
	}
	if len(p.Logs) > 0 {
		return fmt.Errorf("the policy lists logs, but not the log key %s", vkey)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("the log key is not a note verifier key: %w", err)
	}
	p.Logs = append(p.Logs, &Log{VKey: vkey, Verifier: v})
	return nil
}

// LogFor returns the policy's log whose key name is origin, or nil.
func (p *Policy) LogFor(origin string) *Log {
	for _, l := range p.Logs {
		if l.Origin() == origin {
			return l
		}
	}
	return nil
}

// OriginHash is the hex SHA-256 of an origin, the path segment of a
// witness's monitoring endpoint GET /<hex>/checkpoint.
func OriginHash(origin string) string {
	h := sha256.Sum256([]byte(origin))
	return fmt.Sprintf("%x", h[:])
}
