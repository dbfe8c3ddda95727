package walkthrough

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	doc := "# Title\n\n```sh\necho one\n```\n\nText.\n\n" +
		"<!-- readme-test: background ready=\"listening on\" timeout=90s -->\n\n```bash\nserve\n```\n" +
		"```go\nfunc main() {}\n```\n" +
		"<!-- readme-test: needs=\"postgres:5432,chromium\" expect=OK expect=\"all good\" -->\n````shell\necho OK\n```\nstill inside\n````\n" +
		"<!-- readme-test: skip=\"the test suite itself\" -->\n```sh\nmake test\n```\n" +
		"```\nplain text, not run\n```\n"
	got, err := Parse("doc.md", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{
		{File: "doc.md", Line: 3, Text: "echo one\n"},
		{File: "doc.md", Line: 11, Text: "serve\n", Background: true, Ready: "listening on", Timeout: 90 * time.Second},
		{File: "doc.md", Line: 18, Text: "echo OK\n```\nstill inside\n", Needs: []Service{{"postgres", 5432}, {"chromium", 0}}, Expect: []string{"OK", "all good"}},
		{File: "doc.md", Line: 24, Text: "make test\n", Skip: "the test suite itself"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"```sh\necho\n", "not closed"},
		{"<!-- readme-test: skip=\"x\" -->\n```go\n```\n", "not a shell block"},
		{"<!-- readme-test: skip=\"x\" -->\ntext\n```sh\n```\n", "must be followed by a shell block"},
		{"<!-- readme-test: skip=\"x\" -->\n", "not followed"},
		{"<!-- readme-test: skip -->\n```sh\n```\n", "needs a value"},
		{"<!-- readme-test: skip=\"\" -->\n```sh\n```\n", "reason"},
		{"<!-- readme-test: background -->\n```sh\n```\n", "ready"},
		{"<!-- readme-test: ready=x -->\n```sh\n```\n", "background blocks"},
		{"<!-- readme-test: background=yes ready=x -->\n```sh\n```\n", "no value"},
		{"<!-- readme-test: retries=3 -->\n```sh\n```\n", "unknown key"},
		{"<!-- readme-test: timeout=soon -->\n```sh\n```\n", "timeout"},
		{"<!-- readme-test: needs=\"pg:99999\" -->\n```sh\n```\n", "port"},
		{"<!-- readme-test: needs=\"../x\" -->\n```sh\n```\n", "needs"},
		{"<!-- readme-test: expect=\"open -->\n```sh\n```\n", "quote"},
		{"<!-- readme-test: skip=x skip=y -->\n```sh\n```\n", "twice"},
		{"<!-- readme-test: skip=x expect=y -->\n```sh\n```\n", "no other key"},
		{"<!-- readme-test: skip=x -->\n<!-- readme-test: skip=y -->\n```sh\n```\n", "two annotations"},
	} {
		if _, err := Parse("d.md", []byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.doc, err, tc.want)
		}
	}
}

// FuzzParse checks that Parse never panics, and that every block it
// returns lies within the document.
func FuzzParse(f *testing.F) {
	f.Add([]byte("```sh\necho\n```\n"))
	f.Add([]byte("<!-- readme-test: background ready=\"a b\" needs=\"x:1\" -->\n```sh\nx\n```"))
	f.Add([]byte("~~~~bash\n~~~\n~~~~\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		blocks, err := Parse("f.md", doc)
		if err != nil {
			return
		}
		lines := strings.Count(string(doc), "\n") + 1
		// Lines are read as bufio.ScanLines reads them: a CR before the
		// line's end is not part of it (a document with CRLF line ends).
		text := strings.TrimSuffix(strings.ReplaceAll(string(doc), "\r\n", "\n"), "\r")
		for _, b := range blocks {
			if b.Line < 1 || b.Line > lines || !strings.Contains(text, b.Text) {
				t.Fatalf("block %+v is not in the document", b)
			}
		}
	})
}
