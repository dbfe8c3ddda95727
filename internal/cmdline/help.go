package cmdline

// The help of a verb, printed the same way by every command: its one-line
// description, its usage, every flag with double dashes, its type and its
// default, and an example; and the version of a build, from the module
// version and commit the Go toolchain recorded.

import (
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// printHelp writes the help of the verb named name (as "agentlog token
// create") with the flags of fs; v.Usage is the whole command line. A zero
// Help prints the flags alone.
func printHelp(w io.Writer, name string, v Help, fs *flag.FlagSet) {
	if v.Summary != "" {
		fmt.Fprintf(w, "%s: %s\n\nUsage:\n  %s\n", name, v.Summary, v.Usage)
	} else {
		fmt.Fprintf(w, "Usage of %s:\n", name)
	}
	fmt.Fprintln(w, "\nFlags:")
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintln(w, line)
		usage = strings.ReplaceAll(usage, "\n", "\n        ")
		if def := f.DefValue; def != "" && def != "0" && def != "false" && def != "0s" && def != "[]" {
			if fmt.Sprintf("%T", f.Value) == "*flag.stringValue" {
				def = fmt.Sprintf("%q", def)
			}
			usage += " (default " + def + ")"
		}
		fmt.Fprintf(w, "        %s\n", usage)
	})
	if v.Example != "" {
		fmt.Fprintf(w, "\nExample:\n  %s\n", v.Example)
	}
}

// Version is "NAME --version": the module version and the commit the
// binary was built from, as the Go toolchain recorded them (go build
// -buildvcs=true in a git clone; make build does).
func Version(name string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return name + " (no build information)"
	}
	return versionOf(name, bi)
}

// versionOf is Version for the given build information.
func versionOf(name string, bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	s := name + " " + v
	var rev, when, modified string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			when = kv.Value
		case "vcs.modified":
			modified = kv.Value
		}
	}
	if rev != "" {
		s += " commit " + rev
		if modified == "true" {
			s += " (modified)"
		}
		if when != "" {
			s += " of " + when
		}
	} else {
		s += " (no commit recorded: built outside a git clone or with -buildvcs=false; make build records it)"
	}
	return s + ", " + bi.GoVersion
}
