package report

import (
	"bytes"
	"fmt"
	"html/template"
	"net/url"
	"strings"
)

// HTML renders the report as one self-contained page: styles inline,
// charts as inline SVG, no script and no reference to anything outside the
// file, so it prints and archives as it is.
func (r *Report) HTML() []byte {
	var b bytes.Buffer
	if err := page.Execute(&b, r); err != nil {
		panic(err) // the template and a Report always render
	}
	return b.Bytes()
}

var days = []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}

// barsSVG draws labelled horizontal bars.
func barsSVG(items []Bucket) template.HTML {
	if len(items) == 0 {
		return ""
	}
	const w, bh, left, right = 640, 20, 200, 60
	max := 1
	for _, it := range items {
		max = maxInt(max, it.Value)
	}
	var s strings.Builder
	fmt.Fprintf(&s, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img">`, w, len(items)*bh+6, w, len(items)*bh+6)
	for i, it := range items {
		bw := float64(w-left-right) * float64(it.Value) / float64(max)
		y := i * bh
		fmt.Fprintf(&s, `<text x="4" y="%d">%s</text><rect x="%d" y="%d" width="%.1f" height="%d" fill="#0b57d0"/><text x="%.1f" y="%d">%d</text>`,
			y+14, template.HTMLEscapeString(it.Label), left, y+3, maxF(1, bw), bh-6, float64(left)+bw+6, y+14, it.Value)
	}
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

// dailySVG draws actions per day as columns.
func dailySVG(items []Bucket) template.HTML {
	if len(items) == 0 {
		return ""
	}
	const w, h, left, bottom = 900, 160, 50, 24
	max := 1
	for _, it := range items {
		max = maxInt(max, it.Value)
	}
	cw := float64(w-left-10) / float64(len(items))
	var s strings.Builder
	fmt.Fprintf(&s, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img">`, w, h, w, h)
	fmt.Fprintf(&s, `<text x="2" y="12">%d</text><text x="2" y="%d">0</text>`, max, h-bottom)
	for i, it := range items {
		bh := float64(h-bottom-10) * float64(it.Value) / float64(max)
		x := float64(left) + float64(i)*cw
		fmt.Fprintf(&s, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#0b57d0"><title>%s: %d</title></rect>`,
			x, float64(h-bottom)-bh, maxF(1, cw-1), bh, it.Label, it.Value)
	}
	fmt.Fprintf(&s, `<text x="%d" y="%d">%s</text><text x="%d" y="%d">%s</text>`, left, h-6, items[0].Label, w-80, h-6, items[len(items)-1].Label)
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

// heatSVG draws actions by weekday and hour.
func heatSVG(grid [7][24]int, zone string) template.HTML {
	const cw, ch, left, top = 30, 18, 40, 16
	max := 1
	for _, row := range grid {
		for _, n := range row {
			max = maxInt(max, n)
		}
	}
	var s strings.Builder
	fmt.Fprintf(&s, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img">`, left+24*cw+10, top+7*ch+24, left+24*cw+10, top+7*ch+24)
	for hr := 0; hr < 24; hr += 2 {
		fmt.Fprintf(&s, `<text x="%d" y="%d">%02d</text>`, left+hr*cw+2, top-4, hr)
	}
	for d, row := range grid {
		fmt.Fprintf(&s, `<text x="4" y="%d">%s</text>`, top+d*ch+13, days[d])
		for hr, n := range row {
			fill := "#f0f2f4"
			if n > 0 {
				fill = fmt.Sprintf("rgba(11,87,208,%.3f)", 0.15+0.85*float64(n)/float64(max))
			}
			fmt.Fprintf(&s, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s %02d:00 %s: %d</title></rect>`, left+hr*cw, top+d*ch, cw-2, ch-2, fill, days[d], hr, template.HTMLEscapeString(zone), n)
		}
	}
	fmt.Fprintf(&s, `<text x="%d" y="%d">hours in %s; darkest = %d actions</text>`, left, top+7*ch+16, template.HTMLEscapeString(zone), max)
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

// readable is a query string unescaped for reading (the exact one is in
// report.json).
func readable(q string) string {
	if s, err := url.QueryUnescape(q); err == nil {
		return s
	}
	return q
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func maxF(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"bars":  barsSVG,
	"daily": dailySVG,
	"heat":  heatSVG,
	"hex":   func(b []byte) string { return fmt.Sprintf("%x", b) },
	"query": func(i int, qs []string) string {
		if i < len(qs) {
			return readable(qs[i])
		}
		return ""
	},
	"readable": readable,
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>SOC 2 period report: {{.Origin}}, {{.From}} to {{.To}}</title>
<style>
body { font-family: system-ui, sans-serif; color: #1b1f24; margin: 24px auto; max-width: 980px; font-size: 13px; line-height: 1.45; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; border-bottom: 2px solid #1b1f24; padding-bottom: 2px; margin-top: 28px; }
h3 { font-size: 14px; margin: 14px 0 6px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { border-bottom: 1px solid #d5dae0; padding: 3px 6px; text-align: left; vertical-align: top; word-break: break-word; }
th { background: #f5f7f9; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 11.5px; }
.muted { color: #5b6570; }
.control { background: #f5f7f9; border-left: 4px solid #0b57d0; padding: 6px 10px; }
.ok { color: #1a7f37; font-weight: 600; }
.bad { color: #b42318; font-weight: 600; }
svg text { font-size: 10px; fill: #5b6570; font-family: system-ui, sans-serif; }
section { break-inside: auto; }
section h2 { break-after: avoid; }
@media print { body { margin: 0; max-width: none; } h2 { break-before: page; } h2.first { break-before: avoid; } }
</style>
</head>
<body>
<h1>SOC 2 period report</h1>
<p><strong>{{.Origin}}</strong>, period <strong>{{.From}}</strong> to <strong>{{.To}}</strong> (end exclusive). Generated {{.Generated}}.</p>
<table>
<tr><th>entries in the period</th><td class="n" id="entries">{{.Entries}}</td></tr>
<tr><th>index range</th><td class="mono">[{{.Start}}, {{.End}})</td></tr>
<tr><th>checkpoint</th><td class="mono">tree size {{.TreeSize}}, root {{hex .Root}}{{if .CheckpointTime}}, signed at {{.CheckpointTime}}{{end}}</td></tr>
<tr><th>signatures</th><td class="mono">{{range $i, $s := .Signers}}{{if $i}}, {{end}}{{$s}}{{end}}</td></tr>
<tr><th>completeness</th><td>{{if .Complete}}<span class="ok">proven</span>: the evidence export holds every entry of the range and its neighbours{{else}}<span class="bad">not proven</span>{{end}}</td></tr>
</table>
<p class="muted">Every number below is computed from the evidence export in <code>evidence/</code> next to this file; <code>agentlog evidence verify REPORT_DIR --log-key log.pub</code> checks the export's proofs and recomputes this report. Numbers with a query can be checked against the log with <code>GET /v1/query?QUERY</code> (or <code>agentlog query</code> with the same filters).</p>
<h3>Actions per day (UTC)</h3>
{{daily .Daily}}
<h3>Actions by weekday and hour ({{.Zone}})</h3>
{{heat .Heatmap .Zone}}
{{range $i, $s := .Sections}}
<section id="{{$s.ID}}">
<h2{{if eq $i 0}} class="first"{{end}}>{{$s.ID}}: {{$s.Title}}</h2>
<h3>Control</h3>
<p class="control">{{$s.Control}}</p>
<h3>Evidence</h3>
<table>
<tr><th>measure</th><th>count</th><th>query</th></tr>
{{range $s.Counts}}<tr><td>{{.Label}}</td><td class="n" data-count="{{.ID}}">{{.Value}}</td><td class="mono" data-query="{{.Query}}">{{readable .Query}}</td></tr>
{{end}}</table>
{{if $s.Bars}}<h3>{{$s.BarsTitle}}</h3>{{bars $s.Bars}}{{end}}
{{range $s.Tables}}<h3>{{.Title}}</h3>
<table>
<tr>{{range .Columns}}<th>{{.}}</th>{{end}}{{if .Queries}}<th>query</th>{{end}}</tr>
{{$t := .}}{{range $j, $row := .Rows}}<tr>{{range $row}}<td>{{.}}</td>{{end}}{{if $t.Queries}}<td class="mono">{{query $j $t.Queries}}</td>{{end}}</tr>
{{end}}</table>
{{end}}
<h3>Exceptions ({{len $s.Exceptions}})</h3>
{{if $s.Exceptions}}<table class="exceptions" data-section="{{$s.ID}}">
<tr><th style="width:4em">entry</th><th style="width:11em">time</th><th>agent</th><th>finding</th></tr>
{{range $s.Exceptions}}<tr><td class="n">{{.Index}}</td><td class="mono">{{.Time}}</td><td>{{.Agent}}</td><td>{{.What}}</td></tr>
{{end}}</table>{{else}}<p class="ok">None.</p>{{end}}
<h3>How to verify</h3>
<ul>{{range $s.Verify}}<li><code>{{.}}</code></li>{{end}}</ul>
</section>
{{end}}
</body>
</html>
`))
