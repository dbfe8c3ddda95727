package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/query"
)

// maxGatewayBodyBytes caps a gateway's configuration (POST
// /v1/gateway/config).
const maxGatewayBodyBytes = 256 << 10

// postGatewayConfig records a recording gateway's configuration as one
// system entry (action gateway.configured), attributed to the gateway's
// operator token (role gateway, which may do nothing else). The gateway
// sends it when it starts, before serving: a fail_open route is then on
// record (docs/gateway.md).
func (s *Server) postGatewayConfig(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "gateway.config", RoleGateway)
	if err != nil {
		return err
	}
	var req agentlog.GatewayConfig
	if err := decodeStrict(r, &req); err != nil {
		return err
	}
	if err := req.Check(); err != nil {
		return err
	}
	attrs, err := jsonMarshal(struct {
		agentlog.GatewayConfig
		FailOpen []string `json:"fail_open"`
	}{req, append([]string{}, req.FailOpen()...)})
	if err != nil {
		return fmt.Errorf("encoding the gateway configuration: %w", err)
	}
	res, err := s.cfg.Log.Append(r.Context(), p, alog.KindSystem, []alog.Record{{Action: "gateway.configured", Tool: "gateway", Resource: req.Listen, Outcome: "success", Attributes: attrs}})
	if err != nil {
		return err
	}
	a := res[0]
	return writeJSON(w, agentlog.Appended{Index: a.Index, LeafHash: a.LeafHash[:], Time: a.Time.UTC().Format(time.RFC3339Nano)})
}

// getGateways answers each recording gateway's last recorded
// configuration (agentlog.Gateways), read from the log's gateway.configured
// entries through the query index. It is derived from the entries alone,
// so a standby, which imports them, answers it exactly as the active that
// wrote them, before and after it takes over.
func (s *Server) getGateways(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "gateways", RoleAuditor, RoleAdmin); err != nil {
		return err
	}
	out, err := recordedGateways(r.Context(), s.cfg.Log)
	if err != nil {
		return err
	}
	return writeJSON(w, out)
}

// recordedGateways reads each gateway's last recorded configuration from
// the log's gateway.configured entries.
func recordedGateways(ctx context.Context, l *alog.Log) (agentlog.Gateways, error) {
	type key struct{ principal, listen string }
	latest := map[key]*agentlog.RecordedGateway{}
	size := l.Size()
	f := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindSystem}, {Field: "action", Value: "gateway.configured"}}}
	if _, err := l.Search(ctx, f, 0, size, 0, func(i uint64, leaf []byte) error {
		lf, err := agentlog.ParseLeaf(leaf)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		var c struct {
			agentlog.GatewayConfig
			FailOpen []string `json:"fail_open"`
		}
		if err := json.Unmarshal(lf.Attributes, &c); err != nil {
			return fmt.Errorf("entry %d: the gateway configuration: %w", i, err)
		}
		k := key{lf.Principal, c.Listen}
		n := 1
		if g := latest[k]; g != nil {
			n = g.Recorded + 1
		}
		latest[k] = &agentlog.RecordedGateway{Principal: lf.Principal, Index: i, Time: lf.Time.UTC().Format(time.RFC3339Nano),
			GatewayConfig: c.GatewayConfig, FailOpen: append([]string{}, c.FailOpen...), Recorded: n}
		return nil
	}); err != nil {
		return agentlog.Gateways{}, fmt.Errorf("reading the gateway configurations: %w", err)
	}
	out := agentlog.Gateways{TreeSize: size, Gateways: []agentlog.RecordedGateway{}}
	for _, g := range latest {
		out.Gateways = append(out.Gateways, *g)
	}
	slices.SortFunc(out.Gateways, func(a, b agentlog.RecordedGateway) int {
		return cmp.Or(strings.Compare(a.Principal, b.Principal), strings.Compare(a.Listen, b.Listen))
	})
	return out, nil
}
