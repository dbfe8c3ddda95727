package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/agentlog/agentlog"
)

// Controls returns the log's control-status document (GET /v1/controls,
// auditor or admin) over the window ending now (0: the server's default,
// a day), and the answer as the server sent it.
func (c *Client) Controls(ctx context.Context, window time.Duration) (*agentlog.Controls, []byte, error) {
	path := "/v1/controls"
	if window > 0 {
		path += "?" + url.Values{"window": {window.String()}}.Encode()
	}
	b, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, nil, err
	}
	var out agentlog.Controls
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, nil, fmt.Errorf("decoding the control-status document: %w", err)
	}
	if out.Format != agentlog.ControlsFormat {
		return nil, nil, fmt.Errorf("the server's control-status document is %q, not %s", out.Format, agentlog.ControlsFormat)
	}
	return &out, b, nil
}
