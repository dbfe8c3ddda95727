// Package walkthrough runs the shell blocks of the README and the docs as a
// test: each fenced block marked sh, bash or shell runs as written, in
// order, in one shell session (variables and the working directory carry
// over from block to block), in a fresh copy of the repository. A block
// may be preceded by an annotation, an HTML comment on the line before its
// fence (blank lines between are allowed):
//
//	<!-- readme-test: background ready="agentlog listening on" -->
//
// The annotation says how to run the block, never what to run: the block
// itself is not rewritten. Its words are key=value pairs (values with
// spaces in double quotes) or bare keys:
//
//   - skip="reason": not run; the reason is required and says why (a
//     production path, the test suite itself, hours of work).
//   - background: a long-running process (a server). It is started, and
//     the walkthrough goes on once its output contains ready="TEXT"
//     (required); it is stopped with SIGTERM when the walkthrough ends.
//   - needs="NAME[:PORT],...": the section needs a service. The runner
//     runs .ci/services/NAME.sh (idempotent; it returns once the service
//     is ready) before the walkthrough starts, and makes PORT on the
//     host's loopback reachable on the walkthrough's loopback.
//   - expect="TEXT": the block's output (stdout and stderr) must contain
//     TEXT (repeatable).
//   - timeout=DURATION: how long the block may run (default 2m; for a
//     background block, how long until ready, default 3m).
//
// Every block of a foreground kind must exit 0 (the shell runs with
// errexit and pipefail). The walkthrough runs in its own network
// namespace: the loopback is its own (so the README's default ports never
// collide with anything else on the machine), nothing outside is
// reachable (the default NTP servers are unreachable, as on a machine
// without Internet access), and DNS queries go to a server that never
// answers (as with a slow resolver).
package walkthrough

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Block is one shell block of a document.
type Block struct {
	File string // the document, relative to the repository root
	Line int    // line of the opening fence (1-based)
	Text string // the block as written, ending with a newline

	Skip       string        // why the block is not run; empty: it runs
	Background bool          // a long-running process
	Ready      string        // with Background: the output that says it is ready
	Needs      []Service     // services the block needs
	Expect     []string      // texts the output must contain
	Timeout    time.Duration // zero: the default
}

// Service is a service a block needs: .ci/services/Name.sh, serving Port
// on the loopback (0: no port, e.g. a browser).
type Service struct {
	Name string
	Port int
}

// Where names the block for messages: "README.md:42".
func (b *Block) Where() string { return fmt.Sprintf("%s:%d", b.File, b.Line) }

const marker = "readme-test:"

// MaxSize caps the documents Parse reads.
const MaxSize = 4 << 20

// Parse returns the shell blocks of the Markdown document md, with their
// annotations. It fails on an annotation it cannot read, one that is not
// followed by a shell block, and an unterminated shell block.
func Parse(file string, md []byte) ([]Block, error) {
	if len(md) > MaxSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", file, MaxSize)
	}
	var (
		blocks  []Block
		pending *Block // an annotation waiting for its block
		pendAt  int
		cur     *Block // the block being read
		fence   string // its fence
		inOther string // the fence of a non-shell block being skipped
	)
	sc := bufio.NewScanner(bytes.NewReader(md))
	sc.Buffer(make([]byte, 0, 64<<10), MaxSize)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != nil:
			if strings.TrimRight(line, " \t") == fence {
				blocks = append(blocks, *cur)
				cur = nil
				continue
			}
			cur.Text += line + "\n"
		case inOther != "":
			if strings.TrimRight(line, " \t") == inOther {
				inOther = ""
			}
		case strings.HasPrefix(line, "```") || strings.HasPrefix(line, "~~~"):
			f := line[:3]
			for len(f) < len(line) && line[len(f)] == f[0] {
				f += line[len(f) : len(f)+1]
			}
			info := strings.Fields(line[len(f):])
			lang := ""
			if len(info) > 0 {
				lang = info[0]
			}
			if lang != "sh" && lang != "bash" && lang != "shell" {
				if pending != nil {
					return nil, fmt.Errorf("%s:%d: the annotation of line %d is followed by a %q block, not a shell block", file, n, pendAt, lang)
				}
				inOther = f
				continue
			}
			b := Block{}
			if pending != nil {
				b = *pending
				pending = nil
			}
			b.File, b.Line, fence = file, n, f
			cur = &b
		case strings.HasPrefix(trimmed, "<!--") && strings.Contains(trimmed, marker):
			if pending != nil {
				return nil, fmt.Errorf("%s:%d: two annotations in a row (the first on line %d)", file, n, pendAt)
			}
			b, err := parseAnnotation(trimmed)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", file, n, err)
			}
			pending, pendAt = b, n
		case trimmed == "":
		default:
			if pending != nil {
				return nil, fmt.Errorf("%s:%d: the annotation of line %d must be followed by a shell block", file, n, pendAt)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: the shell block is not closed", file, cur.Line)
	}
	if pending != nil {
		return nil, fmt.Errorf("%s:%d: the annotation is not followed by a shell block", file, pendAt)
	}
	return blocks, nil
}

// parseAnnotation reads "<!-- readme-test: key=value ... -->".
func parseAnnotation(s string) (*Block, error) {
	body, ok := strings.CutPrefix(s, "<!--")
	if ok {
		body, ok = strings.CutSuffix(body, "-->")
	}
	if !ok {
		return nil, fmt.Errorf("an annotation must be one line: <!-- %s key=value ... -->", marker)
	}
	body, ok = strings.CutPrefix(strings.TrimSpace(body), marker)
	if !ok {
		return nil, fmt.Errorf("an annotation starts with %q", marker)
	}
	words, err := splitWords(body)
	if err != nil {
		return nil, err
	}
	b := &Block{}
	seen := map[string]bool{}
	for _, w := range words {
		k, v, hasValue := strings.Cut(w, "=")
		if seen[k] && k != "expect" {
			return nil, fmt.Errorf("%s is given twice", k)
		}
		seen[k] = true
		if (k == "background") == hasValue {
			if k == "background" {
				return nil, fmt.Errorf("background takes no value")
			}
			if _, known := keys[k]; known {
				return nil, fmt.Errorf("%s needs a value (%s=VALUE)", k, k)
			}
		}
		switch k {
		case "skip":
			if strings.TrimSpace(v) == "" {
				return nil, fmt.Errorf(`skip needs a reason: skip="why"`)
			}
			b.Skip = v
		case "background":
			b.Background = true
		case "ready":
			if v == "" {
				return nil, fmt.Errorf("ready must not be empty")
			}
			b.Ready = v
		case "expect":
			if v == "" {
				return nil, fmt.Errorf("expect must not be empty")
			}
			b.Expect = append(b.Expect, v)
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("timeout %q: want a positive duration such as 90s", v)
			}
			b.Timeout = d
		case "needs":
			for _, part := range strings.Split(v, ",") {
				name, port, hasPort := strings.Cut(strings.TrimSpace(part), ":")
				if !validName(name) {
					return nil, fmt.Errorf("needs %q: a service is the name of a script in .ci/services (letters, digits, '-', '_')", part)
				}
				svc := Service{Name: name}
				if hasPort {
					p, err := strconv.Atoi(port)
					if err != nil || p < 1 || p > 65535 {
						return nil, fmt.Errorf("needs %q: the port must be 1 to 65535", part)
					}
					svc.Port = p
				}
				b.Needs = append(b.Needs, svc)
			}
		default:
			return nil, fmt.Errorf("unknown key %q (want skip, background, ready, needs, expect or timeout)", k)
		}
	}
	switch {
	case b.Background && b.Ready == "":
		return nil, fmt.Errorf(`background needs ready="TEXT", the output that says it is ready`)
	case !b.Background && b.Ready != "":
		return nil, fmt.Errorf("ready is for background blocks")
	case b.Skip != "" && len(words) > 1:
		return nil, fmt.Errorf("skip takes no other key")
	}
	return b, nil
}

var keys = map[string]struct{}{"skip": {}, "ready": {}, "needs": {}, "expect": {}, "timeout": {}}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// splitWords splits on spaces, keeping double-quoted values (with \" and
// \\ escapes) together: a="b c" d is [a=b c, d].
func splitWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\'):
			i++
			w.WriteByte(s[i])
		case c == '"':
			quoted = !quoted
			inWord = true
		case !quoted && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("an unterminated quote")
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}
