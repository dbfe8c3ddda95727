package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client/evidence"
)

// FromEvidence is the Input of the report over the export in dir, which
// ev is the verification of ([evidence.Verify] or [evidence.Export]).
// The export must be a time-range export with no other filter: its
// entries are then every entry of the period.
func FromEvidence(dir string, ev *evidence.Verified, zone string, generated time.Time) (Input, error) {
	m := ev.Manifest
	q, err := url.ParseQuery(m.Query)
	if err != nil {
		return Input{}, fmt.Errorf("%s: the manifest's query: %w", dir, err)
	}
	var from, to time.Time
	for k := range q {
		if k != "from" && k != "to" {
			return Input{}, fmt.Errorf("%s: a report needs an export of the whole period, but its query also filters on %q", dir, k)
		}
	}
	if from, err = time.Parse(time.RFC3339Nano, q.Get("from")); err != nil {
		return Input{}, fmt.Errorf("%s: the export has no start of period (from): %w", dir, err)
	}
	if to, err = time.Parse(time.RFC3339Nano, q.Get("to")); err != nil {
		return Input{}, fmt.Errorf("%s: the export has no end of period (to): %w", dir, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "entries.ndjson"))
	if err != nil {
		return Input{}, err
	}
	in := Input{
		Origin: m.Origin, TreeSize: m.TreeSize, Root: m.Root, CheckpointTime: m.CheckpointTime,
		Checkpoint: ev.Checkpoint.Raw, Start: m.Start, End: m.End, Complete: ev.Complete,
		From: from, To: to, Zone: zone, Generated: generated,
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		var line agentlog.QueryMatch // entries.ndjson has the lines of a query answer
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return Input{}, fmt.Errorf("%s/entries.ndjson: %w", dir, err)
		}
		in.Entries = append(in.Entries, Entry{Index: line.Index, Leaf: line.Entry})
	}
	if err := sc.Err(); err != nil {
		return Input{}, fmt.Errorf("%s/entries.ndjson: %w", dir, err)
	}
	return in, nil
}

// Files of a report directory.
const (
	EvidenceDir = "evidence"    // the period's evidence export
	JSONFile    = "report.json" // the report's numbers
	HTMLFile    = "report.html" // the report, self-contained
	PDFFile     = "report.pdf"  // the same, printed by Chromium (optional)
)

// Check recomputes the report in dir from its evidence export, which ev is
// the verification of, and compares it byte for byte with report.json and
// report.html. The zone and the generation time are taken from
// report.json; everything else must follow from the evidence.
func Check(dir string, ev *evidence.Verified) error {
	raw, err := os.ReadFile(filepath.Join(dir, JSONFile))
	if err != nil {
		return err
	}
	stated, err := Parse(raw)
	if err != nil {
		return err
	}
	gen, err := time.Parse(time.RFC3339, stated.Generated)
	if err != nil {
		return fmt.Errorf("%s: generated: %w", JSONFile, err)
	}
	in, err := FromEvidence(filepath.Join(dir, EvidenceDir), ev, stated.Zone, gen)
	if err != nil {
		return err
	}
	r, err := Compute(in)
	if err != nil {
		return err
	}
	if !bytes.Equal(r.JSON(), raw) {
		return fmt.Errorf("%s differs from the report computed from %s/", JSONFile, EvidenceDir)
	}
	h, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		return err
	}
	if !bytes.Equal(r.HTML(), h) {
		return fmt.Errorf("%s differs from the report computed from %s/", HTMLFile, EvidenceDir)
	}
	return nil
}
