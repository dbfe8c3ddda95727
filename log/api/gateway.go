package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
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
