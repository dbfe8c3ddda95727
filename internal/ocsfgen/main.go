// Command ocsfgen generates JSON Schemas (draft 2020-12) for OCSF event
// classes from the official schema repository (github.com/ocsf/ocsf-schema),
// read from a git checkout at a pinned ref, so the OCSF events agentlog
// produces can be validated against them (log/ocsf's tests).
//
// The schema repository describes classes and objects in its own
// metaschema: a class extends a parent class up to base_event and merges
// its attributes; attributes take their type, enum and array-ness from
// dictionary.json; objects extend other objects; "$include" adds a
// profile's attributes, active only when that profile is applied. The
// generated schema is strict: required attributes are required, no other
// properties are allowed, enums of _id attributes are closed, and the
// at_least_one and just_one constraints are kept.
//
// Profiles not yet in the pinned release (record_integrity) are read from
// -profile-ref: files absent at -ref are taken from there.
//
// Regenerate testdata/ocsf (see docs/siem.md):
//
//	git clone https://github.com/ocsf/ocsf-schema /tmp/ocsf-schema
//	go run ./internal/ocsfgen -git /tmp/ocsf-schema -out log/ocsf/testdata/schema
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Pinned inputs: the OCSF release, and the commit that added the
// record_integrity profile (ocsf-schema #1661) for the profile and its
// objects.
const (
	defaultRef        = "1.8.0"
	defaultProfileRef = "2a244bc9"
)

// Classes and profiles agentlog emits.
var (
	classes  = []string{"base_event", "api_activity", "account_change", "authentication", "entity_management", "detection_finding"}
	profiles = []string{"ai_operation", "record_integrity"}
)

func main() {
	gitDir := flag.String("git", "", "a clone of github.com/ocsf/ocsf-schema")
	ref := flag.String("ref", defaultRef, "the OCSF release tag")
	profileRef := flag.String("profile-ref", defaultProfileRef, "the commit proposed profiles are read from")
	out := flag.String("out", "", "output directory")
	flag.Parse()
	if *gitDir == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: ocsfgen -git DIR -out DIR [-ref TAG] [-profile-ref COMMIT]")
		os.Exit(2)
	}
	if err := run(*gitDir, *ref, *profileRef, *out); err != nil {
		fmt.Fprintln(os.Stderr, "ocsfgen:", err)
		os.Exit(1)
	}
}

type repo struct {
	dir, ref, profileRef string
	objects              map[string]map[string]any // by name
	events               map[string]map[string]any
	dict                 map[string]any
	types                map[string]any
	cats                 map[string]any
	applied              map[string]bool
	defs                 map[string]any
	pending              []string
}

func (r *repo) show(ref, path string) ([]byte, error) {
	cmd := exec.Command("git", "-C", r.dir, "show", ref+":"+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git show %s:%s: %w: %s", ref, path, err, strings.TrimSpace(stderr.String()))
	}
	return b, nil
}

func (r *repo) list(ref, dir string) ([]string, error) {
	b, err := exec.Command("git", "-C", r.dir, "ls-tree", "-r", "--name-only", ref, dir).Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-tree %s %s: %w", ref, dir, err)
	}
	return strings.Fields(string(b)), nil
}

func (r *repo) readJSON(ref, path string) (map[string]any, error) {
	b, err := r.show(ref, path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s:%s: %w", ref, path, err)
	}
	return m, nil
}

// load reads the files of a directory at ref and, for names absent there,
// at the profile ref.
func (r *repo) load(dir string) (map[string]map[string]any, error) {
	byName := map[string]map[string]any{}
	for _, ref := range []string{r.ref, r.profileRef} {
		files, err := r.list(ref, dir)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if !strings.HasSuffix(f, ".json") {
				continue
			}
			m, err := r.readJSON(ref, f)
			if err != nil {
				return nil, err
			}
			name, _ := m["name"].(string)
			if _, ok := byName[name]; !ok && name != "" {
				byName[name] = m
			}
		}
	}
	return byName, nil
}

func run(dir, ref, profileRef, out string) error {
	r := &repo{dir: dir, ref: ref, profileRef: profileRef, applied: map[string]bool{}, defs: map[string]any{}}
	for _, p := range profiles {
		r.applied[p] = true
	}
	v, err := r.readJSON(ref, "version.json")
	if err != nil {
		return err
	}
	if v["version"] != strings.TrimPrefix(ref, "v") {
		return fmt.Errorf("version.json at %s says %v", ref, v["version"])
	}
	if r.objects, err = r.load("objects"); err != nil {
		return err
	}
	if r.events, err = r.load("events"); err != nil {
		return err
	}
	d, err := r.readJSON(ref, "dictionary.json")
	if err != nil {
		return err
	}
	dp, err := r.readJSON(profileRef, "dictionary.json")
	if err != nil {
		return err
	}
	r.dict = d["attributes"].(map[string]any)
	for k, v := range dp["attributes"].(map[string]any) {
		if _, ok := r.dict[k]; !ok {
			r.dict[k] = v
		}
	}
	r.types = d["types"].(map[string]any)["attributes"].(map[string]any)
	c, err := r.readJSON(ref, "categories.json")
	if err != nil {
		return err
	}
	r.cats = c["attributes"].(map[string]any)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, name := range classes {
		s, err := r.class(name)
		if err != nil {
			return fmt.Errorf("class %s: %w", name, err)
		}
		if err := write(filepath.Join(out, name+".json"), s); err != nil {
			return err
		}
	}
	for len(r.pending) > 0 {
		name := r.pending[0]
		r.pending = r.pending[1:]
		s, err := r.object(name)
		if err != nil {
			return fmt.Errorf("object %s: %w", name, err)
		}
		r.defs[name] = s
	}
	return write(filepath.Join(out, "objects.json"), map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$comment": fmt.Sprintf("Generated by internal/ocsfgen from github.com/ocsf/ocsf-schema %s (proposed profiles from %s), profiles %s. Do not edit.",
			ref, profileRef, strings.Join(profiles, ", ")),
		"$defs": r.defs,
	})
}

func write(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// attrs collects the attributes of a class or object and its parents,
// child over parent; included profiles' attributes carry the profile.
func (r *repo) attrs(def map[string]any, parent func(string) (map[string]any, error)) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	if ext, _ := def["extends"].(string); ext != "" {
		p, err := parent(ext)
		if err != nil {
			return nil, err
		}
		if out, err = r.attrs(p, parent); err != nil {
			return nil, err
		}
	}
	a, _ := def["attributes"].(map[string]any)
	if inc, ok := a["$include"].([]any); ok {
		for _, f := range inc {
			path := f.(string)
			m, err := r.readJSON(r.ref, path)
			if err != nil {
				if m, err = r.readJSON(r.profileRef, path); err != nil {
					return nil, err
				}
			}
			prof, _ := m["name"].(string)
			for k, v := range m["attributes"].(map[string]any) {
				v := maps.Clone(v.(map[string]any))
				if _, ok := v["profile"]; !ok && m["meta"] == "profile" {
					v["profile"] = prof
				}
				merge(out, k, v)
			}
		}
	}
	for k, v := range a {
		if k != "$include" {
			merge(out, k, v.(map[string]any))
		}
	}
	return out, nil
}

// merge lays attribute spec v over out[k].
func merge(out map[string]map[string]any, k string, v map[string]any) {
	out[k] = overlay(out[k], v)
}

// overlay returns spec v laid over cur: v's keys win, enums add up.
func overlay(cur, v map[string]any) map[string]any {
	cur = maps.Clone(cur)
	if cur == nil {
		cur = map[string]any{}
	}
	for kk, vv := range v {
		if kk == "enum" {
			e, _ := cur["enum"].(map[string]any)
			e = maps.Clone(e)
			if e == nil {
				e = map[string]any{}
			}
			maps.Copy(e, vv.(map[string]any))
			cur["enum"] = e
			continue
		}
		cur[kk] = vv
	}
	return cur
}

func (r *repo) class(name string) (map[string]any, error) {
	def, ok := r.events[name]
	if !ok {
		return nil, errors.New("no such class")
	}
	attrs, err := r.attrs(def, func(n string) (map[string]any, error) {
		if p, ok := r.events[n]; ok {
			return p, nil
		}
		return nil, fmt.Errorf("no parent class %s", n)
	})
	if err != nil {
		return nil, err
	}
	// A proposed profile applies at base_event, as it will in the release
	// that adopts it.
	for _, p := range profiles {
		if _, err := r.show(r.ref, "profiles/"+p+".json"); err == nil {
			continue
		}
		m, err := r.readJSON(r.profileRef, "profiles/"+p+".json")
		if err != nil {
			return nil, err
		}
		for k, v := range m["attributes"].(map[string]any) {
			v := maps.Clone(v.(map[string]any))
			v["profile"] = p
			merge(attrs, k, v)
		}
	}
	cat := ""
	for d := def; d != nil; d = r.events[fmt.Sprint(d["extends"])] {
		if c, ok := d["category"].(string); ok {
			cat = c
			break
		}
	}
	// base_event's category, "other", is uncategorized: 0.
	cu := 0
	if c, ok := r.cats[cat].(map[string]any); ok {
		cu = int(c["uid"].(float64))
	}
	uid, _ := def["uid"].(float64)
	classUID := cu*1000 + int(uid)
	s, err := r.schema(attrs)
	if err != nil {
		return nil, err
	}
	props := s["properties"].(map[string]any)
	props["category_uid"] = map[string]any{"const": cu}
	props["class_uid"] = map[string]any{"const": classUID}
	var types []int
	act, _ := props["activity_id"].(map[string]any)
	acts, _ := act["enum"].([]int)
	for _, n := range acts {
		types = append(types, classUID*100+n)
	}
	props["type_uid"] = map[string]any{"enum": types}
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$comment"] = fmt.Sprintf("OCSF %s class %s (%d), generated by internal/ocsfgen from github.com/ocsf/ocsf-schema %s with profiles %s (proposed ones from %s). Do not edit.",
		r.ref, name, classUID, r.ref, strings.Join(profiles, ", "), r.profileRef)
	return s, nil
}

func (r *repo) object(name string) (map[string]any, error) {
	def, ok := r.objects[name]
	if !ok {
		return nil, errors.New("no such object")
	}
	attrs, err := r.attrs(def, func(n string) (map[string]any, error) {
		if p, ok := r.objects[n]; ok {
			return p, nil
		}
		return nil, fmt.Errorf("no parent object %s", n)
	})
	if err != nil {
		return nil, err
	}
	s, err := r.schema(attrs)
	if err != nil {
		return nil, err
	}
	if c, ok := def["constraints"].(map[string]any); ok {
		var all []any
		for kind, list := range c {
			var alts []any
			for _, a := range list.([]any) {
				if _, ok := s["properties"].(map[string]any)[a.(string)]; ok {
					alts = append(alts, map[string]any{"required": []any{a}})
				}
			}
			switch kind {
			case "at_least_one":
				all = append(all, map[string]any{"anyOf": alts})
			case "just_one":
				all = append(all, map[string]any{"oneOf": alts})
			default:
				return nil, fmt.Errorf("unknown constraint %s", kind)
			}
		}
		if len(all) > 0 {
			s["allOf"] = all
		}
	}
	return s, nil
}

// schema turns merged attributes into an object schema.
func (r *repo) schema(attrs map[string]map[string]any) (map[string]any, error) {
	props := map[string]any{}
	var req []string
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		a := attrs[k]
		if p, ok := a["profile"].(string); ok && !r.applied[p] {
			continue
		}
		d, ok := r.dict[k].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("attribute %s is not in the dictionary", k)
		}
		spec := overlay(d, a)
		t, err := r.typ(spec)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", k, err)
		}
		if spec["is_array"] == true {
			t = map[string]any{"type": "array", "items": t}
		}
		props[k] = t
		if spec["requirement"] == "required" {
			req = append(req, k)
		}
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(req) > 0 {
		s["required"] = req
	}
	return s, nil
}

func (r *repo) typ(spec map[string]any) (map[string]any, error) {
	t, _ := spec["type"].(string)
	// Enums of integer attributes (the _id ones) are closed; string enums
	// only suggest values.
	if e, ok := spec["enum"].(map[string]any); ok && t == "integer_t" {
		var vals []int
		for k := range e {
			n, err := strconv.Atoi(k)
			if err != nil {
				return nil, fmt.Errorf("enum value %q is not an integer", k)
			}
			vals = append(vals, n)
		}
		slices.Sort(vals)
		return map[string]any{"type": "integer", "enum": vals}, nil
	}
	if t == "object" {
		return map[string]any{"type": "object"}, nil
	}
	if !strings.HasSuffix(t, "_t") {
		if _, ok := r.objects[t]; !ok {
			return nil, fmt.Errorf("unknown type %q", t)
		}
		if _, ok := r.defs[t]; !ok {
			r.defs[t] = nil
			r.pending = append(r.pending, t)
		}
		return map[string]any{"$ref": "objects.json#/$defs/" + t}, nil
	}
	return r.scalar(t)
}

func (r *repo) scalar(t string) (map[string]any, error) {
	switch t {
	case "string_t":
		return map[string]any{"type": "string"}, nil
	case "integer_t", "long_t":
		return map[string]any{"type": "integer"}, nil
	case "float_t":
		return map[string]any{"type": "number"}, nil
	case "boolean_t":
		return map[string]any{"type": "boolean"}, nil
	case "json_t":
		return map[string]any{}, nil
	}
	d, ok := r.types[t].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("unknown type %q", t)
	}
	base, _ := d["type"].(string)
	if base == "" {
		return nil, fmt.Errorf("type %q has no base", t)
	}
	s, err := r.scalar(base)
	if err != nil {
		return nil, err
	}
	s = maps.Clone(s)
	if re, ok := d["regex"].(string); ok {
		// Kept only where it is an RE2 expression, as the validator's.
		if _, err := regexp.Compile(re); err == nil {
			s["pattern"] = re
		}
	}
	if n, ok := d["max_len"].(float64); ok {
		s["maxLength"] = int(n)
	}
	if rg, ok := d["range"].([]any); ok && len(rg) == 2 {
		s["minimum"], s["maximum"] = rg[0], rg[1]
	}
	return s, nil
}
