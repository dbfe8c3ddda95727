package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/internal/cmdline"
)

func runControls(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("controls", stderr)
	o := addOperatorFlags(fs, "auditor or admin")
	window := fs.Duration("window", 0, "judge activity (actions, alerts) over this long before now, 1m to 2160h (default: the server's, 24h)")
	format := fs.String("format", "json", "json (the document), vanta (the body of Vanta's custom resource sync_all) or drata (one Drata custom-connection record body a line)")
	vantaID := fs.String("vanta-resource-id", "", "the Vanta custom resource id, for --format vanta")
	failing := fs.Bool("fail", false, "exit with status 1 when a control fails (after printing)")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *format != "json" && *format != "vanta" && *format != "drata":
		return cmdline.Usagef("--format must be json, vanta or drata")
	case *format == "vanta" && *vantaID == "":
		return cmdline.Usagef("--format vanta needs --vanta-resource-id (the id Vanta gave the custom resource)")
	case *format != "vanta" && *vantaID != "":
		return cmdline.Usagef("--vanta-resource-id goes with --format vanta")
	case *window < 0:
		return cmdline.Usagef("--window must be positive")
	}
	c, ctx, cancel, err := o.client()
	if err != nil {
		return err
	}
	defer cancel()
	doc, _, err := c.Controls(ctx, *window)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	switch *format {
	case "json":
		enc.SetIndent("", "  ")
		err = enc.Encode(doc)
	case "vanta":
		err = enc.Encode(vantaSync(doc, *vantaID, strings.TrimRight(*o.server, "/")))
	case "drata":
		for _, r := range grcRecords(doc) {
			if err = enc.Encode(map[string]any{"data": r}); err != nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	if *failing && !doc.Passing {
		n := 0
		for _, k := range doc.Controls {
			if !k.Passing {
				n++
			}
		}
		return fmt.Errorf("%d of %d controls fail", n, len(doc.Controls))
	}
	return nil
}

// grcRecords flattens the document into one record per control, each
// with the same fields of plain types (string, boolean, integer), the
// shape custom resources of GRC tools take. The id is stable per log and
// control, so a daily push updates the same record.
func grcRecords(doc *agentlog.Controls) []map[string]any {
	out := make([]map[string]any, 0, len(doc.Controls))
	for _, k := range doc.Controls {
		out = append(out, map[string]any{
			"id": doc.Origin + "/" + k.ID, "control": k.ID, "criterion": k.Criterion, "title": k.Title,
			"passing": k.Passing, "status": k.Status, "findings": k.Findings, "detail": k.Detail,
			"log_origin": doc.Origin, "generated": doc.Generated.UTC().Format(time.RFC3339),
		})
	}
	return out
}

// vantaSync is the body of PUT https://api.vanta.com/v1/resources/custom_resource/sync_all
// (docs/siem.md): every control as one resource, replacing those of the
// previous sync.
func vantaSync(doc *agentlog.Controls, resourceID, server string) map[string]any {
	var res []map[string]any
	for _, r := range grcRecords(doc) {
		props := map[string]any{}
		for k, v := range r {
			if k != "id" && k != "title" {
				props[k] = v
			}
		}
		res = append(res, map[string]any{
			"displayName": r["title"], "uniqueId": r["id"], "externalUrl": server + "/v1/controls#" + r["control"].(string),
			"customProperties": props,
		})
	}
	return map[string]any{"resourceId": resourceID, "resources": res}
}
