package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
)

// TestGenerate runs the generator over a small schema repository in the
// ocsf-schema layout (a release tag and a later commit with a proposed
// profile) and checks the schema it writes: inheritance, merged enums,
// requirements, object references, profile gating, constraints, and the
// proposed profile applied at base_event.
func TestGenerate(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed:", err)
	}
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(path, s string) {
		t.Helper()
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q")
	write("version.json", `{"version":"9.9.0"}`)
	write("categories.json", `{"attributes":{"application":{"uid":6}}}`)
	write("dictionary.json", `{"attributes":{
	  "activity_id":{"type":"integer_t","enum":{"0":{},"99":{}}},
	  "class_uid":{"type":"integer_t"},"category_uid":{"type":"integer_t"},"type_uid":{"type":"long_t"},
	  "time":{"type":"timestamp_t"},"message":{"type":"string_t"},"actor":{"type":"actor"},
	  "user":{"type":"user"},"name":{"type":"string_t"},"uid":{"type":"string_t"},"region":{"type":"string_t"},
	  "tags":{"type":"string_t","is_array":true},"port":{"type":"port_t"}},
	 "types":{"attributes":{"string_t":{},"integer_t":{},"long_t":{},"timestamp_t":{"type":"long_t"},
	  "port_t":{"type":"integer_t","range":[0,65535]}}}}`)
	write("events/base_event.json", `{"name":"base_event","category":"other","attributes":{
	  "activity_id":{"requirement":"required"},"class_uid":{"requirement":"required"},"category_uid":{"requirement":"required"},
	  "type_uid":{"requirement":"required"},"time":{"requirement":"required"},"message":{"requirement":"recommended"}}}`)
	write("events/application/application.json", `{"name":"application","category":"application","extends":"base_event","attributes":{}}`)
	write("events/application/thing.json", `{"name":"thing","uid":7,"extends":"application","attributes":{
	  "$include":["profiles/cloud.json"],
	  "activity_id":{"enum":{"1":{"caption":"Create"}}},"actor":{"requirement":"required"}}}`)
	write("profiles/cloud.json", `{"name":"cloud","meta":"profile","attributes":{"region":{"requirement":"optional"}}}`)
	write("objects/object.json", `{"name":"object","attributes":{}}`)
	write("objects/_entity.json", `{"name":"_entity","extends":"object","attributes":{"name":{},"uid":{}}}`)
	write("objects/user.json", `{"name":"user","extends":"_entity","attributes":{"tags":{},"port":{"profile":"cloud"}},"constraints":{"at_least_one":["name","uid"]}}`)
	write("objects/actor.json", `{"name":"actor","extends":"object","attributes":{"user":{"requirement":"required"}}}`)
	git("add", "-A")
	git("commit", "-qm", "release")
	git("tag", "9.9.0")
	write("profiles/stamp.json", `{"name":"stamp","meta":"profile","attributes":{"stamp":{"requirement":"optional"}}}`)
	write("objects/stamp.json", `{"name":"stamp","extends":"object","attributes":{"uid":{"requirement":"required"}}}`)
	write("dictionary.json", `{"attributes":{"stamp":{"type":"stamp"}},"types":{"attributes":{}}}`)
	git("add", "-A")
	git("commit", "-qm", "proposed profile")
	git("tag", "proposed")

	classes, profiles = []string{"thing"}, []string{"stamp"}
	out := t.TempDir()
	if err := run(dir, "9.9.0", "proposed", out); err != nil {
		t.Fatal(err)
	}
	var class, objects map[string]any
	for name, v := range map[string]*map[string]any{"thing.json": &class, "objects.json": &objects} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	props := class["properties"].(map[string]any)
	want := map[string]any{
		"class_uid":    map[string]any{"const": 6007.0},
		"category_uid": map[string]any{"const": 6.0},
		"type_uid":     map[string]any{"enum": []any{600700.0, 600701.0, 600799.0}},
		"activity_id":  map[string]any{"type": "integer", "enum": []any{0.0, 1.0, 99.0}},
		"time":         map[string]any{"type": "integer"},
		"actor":        map[string]any{"$ref": "objects.json#/$defs/actor"},
		"stamp":        map[string]any{"$ref": "objects.json#/$defs/stamp"},
	}
	for k, w := range want {
		if !reflect.DeepEqual(props[k], w) {
			t.Errorf("property %s = %v, want %v", k, props[k], w)
		}
	}
	if _, ok := props["region"]; ok {
		t.Error("the cloud profile's attribute is in, though the profile is not applied")
	}
	if !reflect.DeepEqual(class["required"], []any{"activity_id", "actor", "category_uid", "class_uid", "time", "type_uid"}) || class["additionalProperties"] != false {
		t.Errorf("required %v, additionalProperties %v", class["required"], class["additionalProperties"])
	}
	defs := objects["$defs"].(map[string]any)
	user := defs["user"].(map[string]any)
	up := user["properties"].(map[string]any)
	if _, ok := up["port"]; ok || !reflect.DeepEqual(up["tags"], map[string]any{"type": "array", "items": map[string]any{"type": "string"}}) || up["name"] == nil {
		t.Errorf("user properties %v", up)
	}
	if !reflect.DeepEqual(user["allOf"], []any{map[string]any{"anyOf": []any{map[string]any{"required": []any{"name"}}, map[string]any{"required": []any{"uid"}}}}}) {
		t.Errorf("user constraints %v", user["allOf"])
	}
	if !reflect.DeepEqual(defs["stamp"].(map[string]any)["required"], []any{"uid"}) || defs["actor"] == nil {
		t.Errorf("objects %v", defs)
	}
	// A ref that is not the release: refused.
	if err := run(dir, "proposed", "proposed", t.TempDir()); err == nil {
		t.Error("a ref whose version.json differs was accepted")
	}
}
