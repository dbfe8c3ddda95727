package cmdline

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var errOutside = errors.New("the server's certificate is unknown")

// sample is a command with a plain verb, a group and a verb whose
// failure has a hint.
func sample() *Command {
	c := &Command{
		Name:   "tool",
		Title:  "tool: a sample.",
		Groups: map[string][]string{"key": {"make", "drop"}},
		Order:  []string{"key", "greet"},
		Helps: map[string]Help{
			"greet":    {Summary: "say hello", Usage: "greet --name N", Example: "tool greet --name ada"},
			"key make": {Summary: "make a key", Usage: "key make --out F", Example: "tool key make --out k"},
			"key drop": {Summary: "drop a key", Usage: "key drop --id ID", Example: "tool key drop --id 1"},
			"fetch":    {Summary: "fetch a page", Usage: "fetch", Example: "tool fetch"},
		},
		Hint: func(err error) string {
			if errors.Is(err, errOutside) {
				return "trust the CA"
			}
			return ""
		},
	}
	c.Verbs = map[string]VerbFunc{
		"greet": func(args []string, stdout, stderr io.Writer) error {
			fs := c.NewFlags("greet", stderr)
			name := fs.String("name", "", "whom to greet")
			if err := ParseFlags(fs, args); err != nil {
				return err
			}
			if *name == "" {
				return Usagef("--name is required")
			}
			_, err := io.WriteString(stdout, "hello "+*name+"\n")
			return err
		},
		"key": func(args []string, stdout, stderr io.Writer) error {
			fs := c.NewFlags("key "+args[0], stderr)
			fs.String("out", "", "the key file")
			fs.String("id", "", "the key's id")
			return ParseFlags(fs, args[1:])
		},
		"fetch": func(args []string, stdout, stderr io.Writer) error {
			if err := ParseFlags(c.NewFlags("fetch", stderr), args); err != nil {
				return err
			}
			return errOutside
		},
	}
	return c
}

func TestRun(t *testing.T) {
	c := sample()
	for _, tc := range []struct {
		args         []string
		code         int
		stdout, errs string // substrings; "" checks nothing
	}{
		{[]string{"greet", "--name", "ada"}, 0, "hello ada\n", ""},
		{[]string{"greet"}, 2, "", "tool greet: --name is required\nRun \"tool help greet\" for its flags.\n"},
		{[]string{"greet", "--name", "ada", "stray"}, 2, "", "tool greet: unexpected argument \"stray\""},
		{[]string{"greet", "--nope"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"greet", "-h"}, 0, "", "tool greet: say hello\n\nUsage:\n  tool greet --name N\n"},
		{[]string{"fetch"}, 1, "", "tool fetch: the server's certificate is unknown\nhint: trust the CA\n"},
		{[]string{"key"}, 2, "", "tool key: make, drop\n"},
		{[]string{"key", "-h"}, 0, "  tool key make --out F\n      make a key\n", ""},
		{[]string{"help", "key"}, 0, "Run \"tool help key SUBVERB\"", ""},
		{[]string{"help", "key", "make"}, 0, "tool key make: make a key", ""},
		{[]string{"key", "make", "--nope"}, 2, "", "tool key make: flag provided but not defined: -nope\nRun \"tool help key make\" for its flags.\n"},
		{[]string{"key", "mint"}, 2, "", "tool key: unknown key verb \"mint\": want make or drop\nRun \"tool help key\" for its flags.\n"},
		{[]string{"help", "key", "mint"}, 2, "", "tool help: unknown key verb \"mint\": want make or drop\n"},
		{[]string{"help", "nope"}, 2, "", "tool help: unknown verb \"nope\"; \"tool help\" lists them\n"},
		{[]string{"help", "a", "b", "c"}, 2, "", "want \"tool help [VERB [SUBVERB]]\""},
		{[]string{"nope"}, 2, "", "tool: unknown verb \"nope\"\n\ntool: a sample."},
		{nil, 2, "", "Verbs:\n"},
		{[]string{"--help"}, 0, "Verbs:\n", ""},
		{[]string{"--version"}, 0, "tool ", ""},
	} {
		var stdout, stderr bytes.Buffer
		code := c.Run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.errs) {
			t.Errorf("tool %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.errs)
		}
	}
}

// TestOverview: the verbs in Order first, in that order, each sub-verb of
// a group on its own line, then the others sorted.
func TestOverview(t *testing.T) {
	var b bytes.Buffer
	sample().Overview(&b)
	want := `tool: a sample.

Usage: tool VERB [flags]    (tool help VERB, or VERB -h, for its flags and an example)

Verbs:
  key make          make a key
  key drop          drop a key
  greet             say hello
  fetch             fetch a page

  --version         print the version and commit of this build
`
	if b.String() != want {
		t.Errorf("overview:\n%s\nwant:\n%s", b.String(), want)
	}
	if got := strings.Join(sample().Paths(), ","); got != "fetch,greet,key drop,key make" {
		t.Errorf("Paths: %s", got)
	}
}

// TestCheckHelp: a complete command passes; a verb without help and a
// flag without a description are reported.
func TestCheckHelp(t *testing.T) {
	if errs := sample().CheckHelp(); len(errs) != 0 {
		t.Fatalf("CheckHelp of a complete command: %v", errs)
	}
	c := sample()
	delete(c.Helps, "key drop")
	c.Verbs["quiet"] = func(args []string, stdout, stderr io.Writer) error {
		fs := c.NewFlags("quiet", stderr)
		fs.Bool("silent", false, "")
		return ParseFlags(fs, args)
	}
	c.Helps["quiet"] = Help{Summary: "do nothing", Usage: "quiet", Example: "tool quiet"}
	var msgs []string
	for _, err := range c.CheckHelp() {
		msgs = append(msgs, err.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"tool key drop has no help entry", "tool quiet: flag --silent has no description"} {
		if !strings.Contains(all, want) {
			t.Errorf("CheckHelp does not report %q:\n%s", want, all)
		}
	}
	if c.FlagSetHook != nil {
		t.Error("CheckHelp left its FlagSet hook set")
	}
}

func TestParseFlagsHelp(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := ParseFlags(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	var ue UsageError
	if err := ParseFlags(fs, []string{"--x"}); !errors.As(err, &ue) {
		t.Errorf("an unknown flag: %v, want a UsageError", err)
	}
}

func TestMultiFlag(t *testing.T) {
	var m MultiFlag
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Var(&m, "route", "")
	if err := fs.Parse([]string{"--route", "a", "--route", "b"}); err != nil || m.String() != "a,b" {
		t.Errorf("MultiFlag: %v, %q", err, m.String())
	}
}

func TestCredential(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose")
	if err := os.WriteFile(loose, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ue UsageError
	if v, err := Credential("given", "", "token", "token-file", "missing"); err != nil || v != "given" {
		t.Errorf("a value: %q, %v", v, err)
	}
	if v, err := Credential("", file, "token", "token-file", "missing"); err != nil || v != "from-file" {
		t.Errorf("a file: %q, %v", v, err)
	}
	if _, err := Credential("given", file, "token", "token-file", "missing"); !errors.As(err, &ue) || ue.Msg != "give --token or --token-file, not both" {
		t.Errorf("both: %v", err)
	}
	if _, err := Credential("", "", "token", "token-file", "a token is required"); !errors.As(err, &ue) || ue.Msg != "a token is required" {
		t.Errorf("neither: %v", err)
	}
	if _, err := Credential("", loose, "token", "token-file", "missing"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a file others can read: %v", err)
	}
}

func TestLoadOrCreateToken(t *testing.T) {
	p := filepath.Join(t.TempDir(), "admin.token")
	tok, err := LoadOrCreateToken(p)
	if err != nil || len(tok) != 43 {
		t.Fatalf("first use: %q, %v", tok, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the token file: %v, %v", fi, err)
	}
	if again, err := LoadOrCreateToken(p); err != nil || again != tok {
		t.Errorf("second use: %q, %v; want the same token %q", again, err, tok)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a token file others can read: %v", err)
	}
	if other, err := LoadOrCreateToken(filepath.Join(t.TempDir(), "other.token")); err != nil || other == tok {
		t.Errorf("another directory: %q, %v; want a new token", other, err)
	}
}

func TestSecretOut(t *testing.T) {
	if p, err := SecretOut(""); p != nil || err != nil {
		t.Errorf("no path: %v, %v", p, err)
	}
	out := filepath.Join(t.TempDir(), "secret")
	p, err := SecretOut(out)
	if err != nil {
		t.Fatal(err)
	}
	p.Abort()
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Abort: %v, want no file", err)
	}
}

func TestCheckDoc(t *testing.T) {
	src := "// Command tool does things.\n//\n//\ttool greet    say hello\n//\ttool key make  make a key\n//\ttool key drop  drop a key\n//\ttool fetch     fetch\npackage main\n"
	dir := t.TempDir()
	write := func(src string) string {
		p := filepath.Join(dir, "main.go")
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if errs := sample().CheckDoc(write(src)); len(errs) != 0 {
		t.Errorf("CheckDoc of a complete doc: %v", errs)
	}
	src = "// Command tool does things.\n//\n//\ttool greet    say hello\n//\ttool serve    serve\npackage main\n\n//\ttool fetch in a later comment\n"
	var msgs []string
	for _, err := range sample().CheckDoc(write(src)) {
		msgs = append(msgs, err.Error())
	}
	want := "the package doc does not list tool fetch\nthe package doc does not list tool key\nthe package doc lists tool serve, which is no verb"
	if got := strings.Join(msgs, "\n"); got != want {
		t.Errorf("CheckDoc:\n%s\nwant:\n%s", got, want)
	}
	if errs := sample().CheckDoc(filepath.Join(dir, "none.go")); len(errs) != 1 || !errors.Is(errs[0], os.ErrNotExist) {
		t.Errorf("CheckDoc of a missing file: %v", errs)
	}
}

func TestSubverbError(t *testing.T) {
	c := sample()
	c.Groups["key"] = []string{"make", "drop", "list"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, `want "tool key make|drop|list [flags]"`},
		{[]string{"mint"}, `unknown key verb "mint": want make, drop or list`},
	} {
		var ue UsageError
		if err := c.SubverbError("key", tc.args); !errors.As(err, &ue) || ue.Msg != tc.want {
			t.Errorf("SubverbError(key, %q) = %v, want the usage error %q", tc.args, err, tc.want)
		}
	}
}
