// Package cmdline is the command-line plumbing of the repository's
// commands, cmd/agentlog (the production binary), cmd/agentlog-dev (its
// development tools) and cmd/agentlog-witness, so that all behave the
// same way:
//
//   - a [Command] is a table of verbs, verbs with sub-verbs ("agent
//     register") and their help; [Command.Run] dispatches a command line,
//     prints "NAME help", "NAME help VERB", "VERB -h" and "--version", and
//     maps a verb's error to the exit status: 0, 1 for a failure (with a
//     hint where the cause is outside the command), 2 for a usage mistake;
//   - a [UsageError] ([Usagef]) is a command-line mistake: Run prints it
//     with a pointer to the verb's help and exits 2;
//   - [Command.NewFlags] makes a verb's FlagSet, which reports errors
//     instead of exiting and prints the verb's help on -h (summary, usage,
//     every flag with double dashes, type and default, example);
//     [ParseFlags] parses it and refuses stray arguments; [Version] is
//     "--version", the module version and commit of the build;
//   - the readers of secrets given on the command line: [ReadSecret],
//     [Credential], [SecretOut] and [LoadOrCreateToken], all with
//     internal/secretfile's rule (mode 0600, refused when others can read);
//   - the checks each command's tests run: [Command.CheckHelp] (every verb
//     explains itself) and [Command.CheckDoc] (the package doc lists every
//     verb).
package cmdline

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/agentlog/agentlog/internal/atomicfile"
	"github.com/agentlog/agentlog/internal/secretfile"
)

// UsageError is a command-line mistake: [Command.Run] prints it with a
// hint to the verb's help and exits 2.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Usagef returns a [UsageError] with a formatted message.
func Usagef(format string, a ...any) error { return UsageError{fmt.Sprintf(format, a...)} }

// VerbFunc runs one verb with the arguments after its name.
type VerbFunc func(args []string, stdout, stderr io.Writer) error

// Help is what "NAME help VERB" and "VERB -h" print besides the flags.
type Help struct {
	Summary string // one line
	Usage   string // after "NAME "; more lines for alternatives
	Example string // commands a user can copy
}

// Command is a command with verbs.
type Command struct {
	Name  string              // "agentlog": the binary, the prefix of every FlagSet's name
	Title string              // the overview's first line
	Verbs map[string]VerbFunc // every verb, a group's function receiving its sub-verb first
	// Groups are the verbs with sub-verbs, in the order help lists them.
	Groups map[string][]string
	// Order is the order of the overview; verbs not in it follow.
	Order []string
	// Helps describes every verb and sub-verb, keyed as its FlagSet is
	// named ("agent register").
	Helps map[string]Help
	// Hint, if set, names the fix for a failure whose cause is outside
	// the command ("" for none).
	Hint func(error) string
	// FlagSetHook, if set (by a test), receives each FlagSet whose usage
	// is printed.
	FlagSetHook func(*flag.FlagSet)
}

// Run runs the command line args (without the binary's name) and returns
// the exit status.
func (c *Command) Run(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		c.Overview(stderr)
		return 2
	case args[0] == "-h" || args[0] == "--help" || args[0] == "-help":
		c.Overview(stdout)
		return 0
	case args[0] == "--version" || args[0] == "-version" || args[0] == "version":
		fmt.Fprintln(stdout, Version(c.Name))
		return 0
	}
	if args[0] == "help" {
		if err := c.help(args[1:], stdout); err != nil {
			fmt.Fprintf(stderr, "%s help: %s\n", c.Name, err)
			return 2
		}
		return 0
	}
	v, ok := c.Verbs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown verb %q\n\n", c.Name, args[0])
		c.Overview(stderr)
		return 2
	}
	if _, isGroup := c.Groups[args[0]]; isGroup && (len(args) == 1 || IsHelpArg(args[1])) {
		if len(args) == 1 {
			c.GroupHelp(stderr, args[0])
			return 2
		}
		c.GroupHelp(stdout, args[0])
		return 0
	}
	// name is what errors are prefixed with and the help they point to:
	// the verb, or a group's verb and sub-verb ("agent register").
	name := args[0]
	var err error
	if subs, isGroup := c.Groups[args[0]]; !isGroup {
		err = v(args[1:], stdout, stderr)
	} else if !slices.Contains(subs, args[1]) {
		err = c.SubverbError(args[0], args[1:])
	} else {
		name += " " + args[1]
		err = v(args[1:], stdout, stderr)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		var ue UsageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "%s %s: %s\nRun \"%s help %s\" for its flags.\n", c.Name, name, err, c.Name, name)
			return 2
		}
		fmt.Fprintf(stderr, "%s %s: %s\n", c.Name, name, err)
		if c.Hint != nil {
			if hint := c.Hint(err); hint != "" {
				fmt.Fprintf(stderr, "hint: %s\n", hint)
			}
		}
		return 1
	}
}

// Paths lists every verb and sub-verb as help names them ("serve",
// "agent register"), sorted.
func (c *Command) Paths() []string {
	var out []string
	for v := range c.Verbs {
		if subs, ok := c.Groups[v]; ok {
			for _, s := range subs {
				out = append(out, v+" "+s)
			}
			continue
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// Overview is "NAME help": every verb with its summary.
func (c *Command) Overview(w io.Writer) {
	fmt.Fprintf(w, "%s\n\nUsage: %s VERB [flags]    (%s help VERB, or VERB -h, for its flags and an example)\n\nVerbs:\n", c.Title, c.Name, c.Name)
	names := slices.Clone(c.Order)
	var rest []string
	for v := range c.Verbs {
		if !slices.Contains(names, v) {
			rest = append(rest, v)
		}
	}
	slices.Sort(rest)
	for _, v := range append(names, rest...) {
		if _, ok := c.Verbs[v]; !ok {
			continue
		}
		if subs, ok := c.Groups[v]; ok {
			for _, s := range subs {
				fmt.Fprintf(w, "  %-17s %s\n", v+" "+s, c.Helps[v+" "+s].Summary)
			}
			continue
		}
		fmt.Fprintf(w, "  %-17s %s\n", v, c.Helps[v].Summary)
	}
	fmt.Fprint(w, "\n  --version         print the version and commit of this build\n")
}

// GroupHelp is "NAME help VERB" for a verb with sub-verbs.
func (c *Command) GroupHelp(w io.Writer, v string) {
	fmt.Fprintf(w, "%s %s: ", c.Name, v)
	fmt.Fprintf(w, "%s\n\n", strings.Join(c.Groups[v], ", "))
	for _, s := range c.Groups[v] {
		h := c.Helps[v+" "+s]
		fmt.Fprintf(w, "  %s %s\n      %s\n", c.Name, h.Usage, h.Summary)
	}
	fmt.Fprintf(w, "\nRun \"%s help %s SUBVERB\" for its flags and an example.\n", c.Name, v)
}

// help is "NAME help [VERB [SUBVERB]]".
func (c *Command) help(args []string, stdout io.Writer) error {
	switch {
	case len(args) == 0:
		c.Overview(stdout)
		return nil
	case len(args) > 2:
		return Usagef("want \"%s help [VERB [SUBVERB]]\"", c.Name)
	}
	v, ok := c.Verbs[args[0]]
	if !ok || args[0] == "help" {
		return Usagef("unknown verb %q; \"%s help\" lists them", args[0], c.Name)
	}
	if subs, isGroup := c.Groups[args[0]]; isGroup {
		if len(args) == 1 {
			c.GroupHelp(stdout, args[0])
			return nil
		}
		if !slices.Contains(subs, args[1]) {
			return c.SubverbError(args[0], args[1:])
		}
	}
	// The verb prints its own flags when asked with -h.
	err := v(append(args[1:], "-h"), stdout, stdout)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return err
	}
	return nil
}

// SubverbError is the usage error of the group verb given args (after
// the group's name) that do not start with one of its sub-verbs: the
// sub-verbs listed from Groups. Run refuses such a command line with it
// before calling the group's function; the function returns it for the
// same case, so that a direct call fails the same way.
func (c *Command) SubverbError(group string, args []string) error {
	subs := c.Groups[group]
	if len(args) == 0 {
		return Usagef("want \"%s %s %s [flags]\"", c.Name, group, strings.Join(subs, "|"))
	}
	list := strings.Join(subs, ", ")
	if n := len(subs); n > 1 {
		list = strings.Join(subs[:n-1], ", ") + " or " + subs[n-1]
	}
	return Usagef("unknown %s verb %q: want %s", group, args[0], list)
}

// NewFlags returns the FlagSet of the verb name ("agent register"): it
// reports errors instead of exiting, and its usage is the verb's help.
func (c *Command) NewFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(c.Name+" "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		if c.FlagSetHook != nil {
			c.FlagSetHook(fs)
		}
		c.FlagUsage(fs.Output(), name, fs)
	}
	return fs
}

// FlagUsage prints a verb's help: summary, usage, every flag with double
// dashes and its default, an example.
func (c *Command) FlagUsage(w io.Writer, name string, fs *flag.FlagSet) {
	h := c.Helps[name]
	if h.Summary == "" {
		h = Help{}
	} else {
		h.Usage = c.Name + " " + h.Usage
	}
	printHelp(w, c.Name+" "+name, h, fs)
}

// IsHelpArg reports whether s asks for help.
func IsHelpArg(s string) bool { return s == "-h" || s == "--help" || s == "-help" || s == "help" }

// ParseFlags parses args and rejects stray positional arguments; a
// mistake is a [UsageError], -h is flag.ErrHelp.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// MultiFlag collects a repeatable flag.
type MultiFlag []string

func (m *MultiFlag) String() string     { return strings.Join(*m, ",") }
func (m *MultiFlag) Set(v string) error { *m = append(*m, v); return nil }

// ReadSecret reads a token or key file, refusing files others can read.
func ReadSecret(path string) (string, error) { return secretfile.Read(path) }

// Credential is the one reader of credential flags: the value of
// --valueFlag, or the content of the --fileFlag file (a secret file, see
// [ReadSecret]), never both; missing is the usage error when neither is
// given.
func Credential(value, file, valueFlag, fileFlag, missing string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", Usagef("give --%s or --%s, not both", valueFlag, fileFlag)
	case file != "":
		return ReadSecret(file)
	case value == "":
		return "", Usagef("%s", missing)
	}
	return value, nil
}

// SecretOut starts the --out file of a secret the server is about to
// hand out (nil when path is empty): commit it once the server answered;
// "defer p.Abort()" removes it otherwise.
func SecretOut(path string) (*secretfile.Pending, error) {
	if path == "" {
		return nil, nil
	}
	return secretfile.Create(path, nil)
}

// LoadOrCreateToken returns the bearer token in path, creating a random
// one (mode 0600) on first use: the admin token of a data directory.
func LoadOrCreateToken(path string) (string, error) {
	tok, err := ReadSecret(path)
	if err == nil {
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a token: %w", err)
	}
	tok = base64.RawURLEncoding.EncodeToString(b)
	if err := atomicfile.Write(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}

// CheckHelp reports every way the command fails to explain itself (its
// tests call it): a verb or sub-verb without a help entry with summary,
// usage and example; "NAME help VERB" and "VERB -h" that fail or differ,
// or lack the summary, the usage or the example; a flag without a
// description, or not listed with double dashes; a verb the overview does
// not name.
func (c *Command) CheckHelp() []error {
	var errs []error
	for _, path := range c.Paths() {
		h, ok := c.Helps[path]
		if !ok || h.Summary == "" || h.Usage == "" || h.Example == "" {
			errs = append(errs, fmt.Errorf("%s %s has no help entry with summary, usage and example", c.Name, path))
			continue
		}
		var viaHelp, viaH, stderr bytes.Buffer
		if code := c.Run(append([]string{"help"}, strings.Fields(path)...), &viaHelp, &stderr); code != 0 {
			errs = append(errs, fmt.Errorf("%s help %s: exit %d: %s", c.Name, path, code, stderr.String()))
			continue
		}
		var fs *flag.FlagSet
		hook := c.FlagSetHook
		c.FlagSetHook = func(f *flag.FlagSet) { fs = f }
		code := c.Run(append(strings.Fields(path), "-h"), &bytes.Buffer{}, &viaH)
		c.FlagSetHook = hook
		if code != 0 {
			errs = append(errs, fmt.Errorf("%s %s -h: exit %d", c.Name, path, code))
		}
		out := viaHelp.String()
		if out != viaH.String() {
			errs = append(errs, fmt.Errorf("%s help %s and %s %s -h differ:\n%s\n---\n%s", c.Name, path, c.Name, path, out, viaH.String()))
		}
		for _, want := range []string{c.Name + " " + path + ": " + h.Summary, "Usage:\n  " + c.Name + " " + h.Usage, "Example:\n  " + h.Example} {
			if !strings.Contains(out, want) {
				errs = append(errs, fmt.Errorf("%s help %s lacks %q:\n%s", c.Name, path, want, out))
			}
		}
		if fs == nil {
			errs = append(errs, fmt.Errorf("%s %s -h made no FlagSet", c.Name, path))
			continue
		}
		fs.VisitAll(func(f *flag.Flag) {
			if strings.TrimSpace(f.Usage) == "" {
				errs = append(errs, fmt.Errorf("%s %s: flag --%s has no description", c.Name, path, f.Name))
			}
			if !strings.Contains(out, "\n  --"+f.Name) {
				errs = append(errs, fmt.Errorf("%s help %s does not list --%s", c.Name, path, f.Name))
			}
		})
	}
	var ov bytes.Buffer
	if code := c.Run([]string{"help"}, &ov, &ov); code != 0 {
		return append(errs, fmt.Errorf("%s help: exit %d", c.Name, code))
	}
	for _, path := range c.Paths() {
		if !strings.Contains(ov.String(), "  "+path+" ") {
			errs = append(errs, fmt.Errorf("%s help does not list %s", c.Name, path))
		}
	}
	return errs
}

// CheckDoc reports every verb the package doc in the Go file at path
// (the command's main.go) does not list, and every name it lists that is
// no verb (its tests call it). The doc lists a verb with a line
// "//<tab>NAME VERB ...", as go doc shows a command's verbs.
func (c *Command) CheckDoc(path string) []error {
	src, err := os.ReadFile(path)
	if err != nil {
		return []error{err}
	}
	doc, _, _ := strings.Cut(string(src), "\npackage ")
	listed := map[string]bool{}
	for _, l := range strings.Split(doc, "\n") {
		if rest, ok := strings.CutPrefix(l, "//\t"+c.Name+" "); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				listed[f[0]] = true
			}
		}
	}
	var errs []error
	for _, v := range slices.Sorted(maps.Keys(c.Verbs)) {
		if !listed[v] {
			errs = append(errs, fmt.Errorf("the package doc does not list %s %s", c.Name, v))
		}
		delete(listed, v)
	}
	for _, v := range slices.Sorted(maps.Keys(listed)) {
		errs = append(errs, fmt.Errorf("the package doc lists %s %s, which is no verb", c.Name, v))
	}
	return errs
}
