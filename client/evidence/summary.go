package evidence

import (
	"bytes"
	"encoding/base64"
	"html/template"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/log/query"
)

// maxSummaryRows bounds the entry table of summary.html; entries.ndjson
// always holds every entry.
const maxSummaryRows = 10000

// evSummaryRow is one row of the entry table: the leaf, its index and
// its time as text (the zero leaf if the entry does not decode).
type evSummaryRow struct {
	Index uint64
	Time  string
	agentlog.Leaf
}

type evSummaryData struct {
	M        *Manifest
	Root     string
	Signers  []string
	Params   [][2]string
	From, To string
	Hours    string
	Rows     []evSummaryRow
	Omitted  int
}

// renderSummary is summary.html: a deterministic function of the verified
// manifest fields, the checkpoint and the entries, so verification can
// recompute it and detect edits.
func renderSummary(m *Manifest, rawCP []byte, f *query.Filter, entries []evEntry) []byte {
	d := evSummaryData{M: m, Root: base64.StdEncoding.EncodeToString(m.Root), Signers: signerNames(rawCP)}
	q, _ := url.ParseQuery(m.Query)
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d.Params = append(d.Params, [2]string{k, strings.Join(q[k], ", ")})
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	if !f.From.IsZero() {
		d.From = ts(f.From)
	}
	if !f.To.IsZero() {
		d.To = ts(f.To)
	}
	if f.Outside != nil {
		d.Hours = q.Get("outside_hours") + " in " + f.Outside.Loc.String()
	}
	for k, e := range entries {
		if k == maxSummaryRows {
			d.Omitted = len(entries) - k
			break
		}
		r := evSummaryRow{Index: e.Index}
		if lf, err := query.DecodeLeaf(e.Leaf); err == nil {
			r.Leaf, r.Time = *lf, ts(lf.Time)
		}
		d.Rows = append(d.Rows, r)
	}
	var b bytes.Buffer
	if err := summaryTemplate.Execute(&b, d); err != nil {
		panic(err) // the template and its data are fixed
	}
	return b.Bytes()
}

var summaryTemplate = template.Must(template.New("summary").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>agentlog evidence: {{.M.Origin}}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
code, .mono { font-family: monospace; word-break: break-all; }
</style>
</head>
<body>
<h1>Audit evidence from {{.M.Origin}}</h1>
<p>This directory is offline-verifiable evidence exported from an agentlog
transparency log. Check it with
<code>agentlog evidence verify DIR --log-key log.pub [--policy policy]</code>,
using the log's public key obtained independently of this directory.</p>

<h2>Query</h2>
<table>
<tr><th>parameter</th><th>value</th></tr>
{{range .Params}}<tr><td>{{index . 0}}</td><td class="mono">{{index . 1}}</td></tr>
{{else}}<tr><td colspan="2">none: every entry</td></tr>
{{end}}</table>
<table>
<tr><th>time range</th><td>{{if .From}}from {{.From}} (inclusive){{else}}from the first entry{{end}}
{{if .To}}to {{.To}} (exclusive){{else}}to the end of the log at this checkpoint{{end}}</td></tr>
{{if .Hours}}<tr><th>outside business hours</th><td>{{.Hours}}</td></tr>
{{end}}<tr><th>index range examined</th><td>[{{.M.Start}}, {{.M.End}})</td></tr>
<tr><th>matching entries</th><td>{{.M.Matches}}</td></tr>
<tr><th>completeness</th><td>{{if .M.Complete}}Proven: range.ndjson holds all {{.M.RangeEntries}} entries of the index range and its two neighbours, so no matching entry in the time range can be missing.{{else}}Not proven: the query has no time bounds, so the export does not include the whole log.{{end}}</td></tr>
</table>

<h2>Checkpoint</h2>
<table>
<tr><th>origin</th><td class="mono">{{.M.Origin}}</td></tr>
<tr><th>tree size</th><td>{{.M.TreeSize}}</td></tr>
<tr><th>root hash</th><td class="mono">{{.Root}}</td></tr>
<tr><th>signed at</th><td>{{if .M.CheckpointTime}}{{.M.CheckpointTime}} (log timestamp signature){{else}}unknown (no timestamp key in the export){{end}}</td></tr>
<tr><th>signatures</th><td>{{range $i, $s := .Signers}}{{if $i}}, {{end}}<span class="mono">{{$s}}</span>{{end}}</td></tr>
</table>

<h2>Entries</h2>
<table>
<tr><th>index</th><th>time (UTC)</th><th>kind</th><th>agent</th><th>action</th><th>tool</th><th>resource</th><th>outcome</th><th>session</th><th>task</th></tr>
{{range .Rows}}<tr><td>{{.Index}}</td><td>{{.Time}}</td><td>{{.Kind}}</td><td>{{.Agent}}</td><td>{{.Action}}</td><td>{{.Tool}}</td><td class="mono">{{.Resource}}</td><td>{{.Outcome}}</td><td class="mono">{{.Session}}</td><td>{{.Task}}</td></tr>
{{else}}<tr><td colspan="10">no entry matches the query</td></tr>
{{end}}</table>
{{if .Omitted}}<p>{{.Omitted}} further entries are not shown; entries.ndjson holds all of them.</p>
{{end}}
<p>Every entry has a c2sp.org/tlog-proof file in proofs/ that proves it is in
the log under the checkpoint above. manifest.json lists the SHA-256 of every file.</p>
</body>
</html>
`))
