// Package ocsftest validates OCSF events against the JSON Schemas
// internal/ocsfgen generated from github.com/ocsf/ocsf-schema at
// [ocsf.Version] (log/ocsf/testdata/schema), for tests.
package ocsftest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentlog/agentlog/log/ocsf"
)

// Validator holds the compiled schema of every class package ocsf emits.
type Validator struct {
	byClass map[int]*jsonschema.Schema
}

// SchemaDir is the directory of the generated schemas.
func SchemaDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "schema")
}

// New compiles the schemas.
func New() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	v := &Validator{byClass: map[int]*jsonschema.Schema{}}
	for name, class := range map[string]int{"base_event": ocsf.ClassBase, "api_activity": ocsf.ClassAPIActivity, "account_change": ocsf.ClassAccountChange,
		"authentication": ocsf.ClassAuthentication, "entity_management": ocsf.ClassEntityManagement, "detection_finding": ocsf.ClassDetectionFinding} {
		p := filepath.Join(SchemaDir(), name+".json")
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
		s, err := c.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("compiling %s: %w", name, err)
		}
		v.byClass[class] = s
	}
	return v, nil
}

// Validate checks one event, as JSON, against the schema of its class_uid.
func (v *Validator) Validate(event []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(event))
	if err != nil {
		return fmt.Errorf("event is not JSON: %w", err)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return fmt.Errorf("event is not a JSON object")
	}
	class, err := classOf(m["class_uid"])
	if err != nil {
		return err
	}
	s := v.byClass[class]
	if s == nil {
		return fmt.Errorf("no schema for class %d", class)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("event of class %d does not validate: %w", class, err)
	}
	return nil
}

// ValidateClass checks an event against the schema of the given class.
func (v *Validator) ValidateClass(class int, event []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(event))
	if err != nil {
		return fmt.Errorf("event is not JSON: %w", err)
	}
	return v.byClass[class].Validate(doc)
}

func classOf(v any) (int, error) {
	n, ok := v.(interface{ String() string })
	if !ok {
		return 0, fmt.Errorf("class_uid %v is not a number", v)
	}
	var c int
	if _, err := fmt.Sscan(n.String(), &c); err != nil {
		return 0, fmt.Errorf("class_uid %v is not an integer", v)
	}
	return c, nil
}
