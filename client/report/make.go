package report

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/client/evidence"
	"github.com/agentlog/agentlog/internal/atomicfile"
)

// Make writes the report of the period [from, to) into dir, which must
// exist: the period's evidence export through c into dir/evidence
// (verified with opts' keys and policy, as [evidence.Export] does), then
// report.json and report.html computed from it, with zone for the heatmap
// and generated as the time of making. It is what "agentlog report" and
// the console's report button run; "agentlog evidence verify dir"
// recomputes and checks both files.
func Make(ctx context.Context, c *client.Client, from, to time.Time, zone string, opts evidence.ExportOptions, dir string, generated time.Time) (*Report, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	evDir := filepath.Join(dir, EvidenceDir)
	ev, err := evidence.Export(ctx, c, q, evDir, opts)
	if err != nil {
		return nil, err
	}
	in, err := FromEvidence(evDir, ev, zone, generated)
	if err != nil {
		return nil, err
	}
	r, err := Compute(in)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, JSONFile), r.JSON(), 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, HTMLFile), r.HTML(), 0o644); err != nil {
		return nil, err
	}
	return r, nil
}

// Exceptions is the number of exceptions over all sections.
func (r *Report) Exceptions() int {
	n := 0
	for _, s := range r.Sections {
		n += len(s.Exceptions)
	}
	return n
}
