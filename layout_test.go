package agentlog_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// leafKeys are leaf keys that together mark a struct as a second leaf or
// record type; agent and time are left out, since many types carry those.
var leafKeys = map[string]bool{
	"kind": true, "session": true, "task": true, "seq": true, "action": true,
	"tool": true, "resource": true, "outcome": true, "sig": true,
}

// wireLiterals are texts only this package may spell out: the first lines
// of the signed bytes, the credential and key-file prefixes, and the
// partial-tile marker of tile paths.
var wireLiterals = []string{
	"agentlog record v1", "agentlog session open v1",
	"agentlog-token-v1.", "agentlog-session-v1.", "AGENTLOG-AGENT-KEY+",
	".p/",
}

// TestOneDefinitionOfTheWireFormats scans the non-test Go files of every
// other package of the module: none may declare a struct with three or
// more leaf keys (a second leaf or record type) or spell out the signed
// bytes, credential formats or tile paths. Tests may: they hold reference
// encodings to check this package against.
func TestOneDefinitionOfTheWireFormats(t *testing.T) {
	fset := token.NewFileSet()
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "interop") {
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Dir(path) == "." || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		n++
		ast.Inspect(f, func(node ast.Node) bool {
			switch x := node.(type) {
			case *ast.StructType:
				var keys []string
				for _, fl := range x.Fields.List {
					for _, k := range jsonNames(fl) {
						if leafKeys[k] {
							keys = append(keys, k)
						}
					}
				}
				if len(keys) >= 3 {
					t.Errorf("%s: a struct with leaf keys %v: use agentlog.Leaf or agentlog.Record", fset.Position(x.Pos()), keys)
				}
			case *ast.BasicLit:
				if x.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(x.Value)
				if err != nil {
					return true
				}
				for _, w := range wireLiterals {
					if strings.Contains(s, w) {
						t.Errorf("%s: %q spells out a wire format of package agentlog", fset.Position(x.Pos()), w)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("scanned only %d files: is the test running at the module root?", n)
	}
}

// jsonNames returns the JSON member names a struct field decodes: its tag
// name, or (untagged, as encoding/json matches case-insensitively) its
// field names in lower case; embedded fields give none.
func jsonNames(f *ast.Field) []string {
	if f.Tag != nil {
		tag, _ := strconv.Unquote(f.Tag.Value)
		if name, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ","); name != "" {
			return []string{name}
		}
	}
	var out []string
	for _, id := range f.Names {
		out = append(out, strings.ToLower(id.Name))
	}
	return out
}

// TestDependencies keeps this package dependency-free (the standard
// library and golang.org/x/mod only), and the Go SDK free of the server's
// NTP client and metrics.
func TestDependencies(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		forbidden func(dep string) bool
	}{
		{".", func(dep string) bool {
			return strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") && !strings.HasPrefix(dep, "golang.org/x/mod/") && dep != "github.com/agentlog/agentlog"
		}},
		{"./client", func(dep string) bool {
			return strings.HasPrefix(dep, "github.com/beevik/ntp") || strings.HasPrefix(dep, "github.com/prometheus/")
		}},
	} {
		out, err := exec.Command("go", "list", "-deps", tc.pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", tc.pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if tc.forbidden(dep) {
				t.Errorf("%s depends on %s", tc.pkg, dep)
			}
		}
	}
}
