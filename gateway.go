package agentlog

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxGatewayRoutes caps the routes of one [GatewayConfig].
const MaxGatewayRoutes = 1000

// GatewayConfig is the body of POST /v1/gateway/config: what a recording
// gateway ("agentlog gateway") serves, sent with an operator token of
// role gateway when it starts. The log records it as one entry of kind
// system, action gateway.configured, attributed to that token, so that a
// fail_open route (calls let through unrecorded when the log cannot be
// written) is on record before it serves a call. The answer is an
// [Appended].
type GatewayConfig struct {
	// Listen is the address the gateway serves on.
	Listen string `json:"listen"`
	// Routes are the gateway's routes, at least one.
	Routes []GatewayRoute `json:"routes"`
}

// GatewayRoute is one route of a [GatewayConfig].
type GatewayRoute struct {
	// Name is the route's name; the gateway serves it at /Name.
	Name string `json:"name"`
	// Upstream is the upstream's http(s) URL, without credentials.
	Upstream string `json:"upstream"`
	// MCP is set for an MCP server over Streamable HTTP.
	MCP bool `json:"mcp"`
	// Record is "before" or "after".
	Record string `json:"record"`
	// Scope is "record" or "enforce".
	Scope string `json:"scope"`
	// FailOpen is set when the route lets calls through unrecorded while
	// the log cannot be written.
	FailOpen bool `json:"fail_open"`
}

// FailOpen returns the names of the fail_open routes.
func (c *GatewayConfig) FailOpen() []string {
	var out []string
	for _, r := range c.Routes {
		if r.FailOpen {
			out = append(out, r.Name)
		}
	}
	return out
}

// Check reports the first problem of c, as an error matching ErrInvalid.
func (c *GatewayConfig) Check() error {
	if !printable(c.Listen, 256) {
		return Invalid(fmt.Sprintf("listen %q: at most 256 printable bytes", c.Listen))
	}
	if len(c.Routes) == 0 || len(c.Routes) > MaxGatewayRoutes {
		return Invalid(fmt.Sprintf("%d routes: want 1 to %d", len(c.Routes), MaxGatewayRoutes))
	}
	seen := map[string]bool{}
	for i, r := range c.Routes {
		switch {
		case !ValidID(r.Name):
			return Invalid(fmt.Sprintf("routes[%d]: name %q must be 1 to 64 letters, digits, '.', '_' or '-'", i, r.Name))
		case seen[r.Name]:
			return Invalid(fmt.Sprintf("routes[%d]: route %q appears twice", i, r.Name))
		case r.Record != "before" && r.Record != "after":
			return Invalid(fmt.Sprintf("route %q: record %q: want before or after", r.Name, r.Record))
		case r.Scope != "record" && r.Scope != "enforce":
			return Invalid(fmt.Sprintf("route %q: scope %q: want record or enforce", r.Name, r.Scope))
		}
		seen[r.Name] = true
		u, err := url.Parse(r.Upstream)
		if err != nil || !printable(r.Upstream, 2048) || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return Invalid(fmt.Sprintf("route %q: upstream %q: want an http(s) URL without credentials, at most 2048 bytes", r.Name, r.Upstream))
		}
	}
	return nil
}

func printable(s string, max int) bool {
	return len(s) <= max && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
}

// RecordedGateway is one gateway's last recorded configuration: the
// newest gateway.configured entry of a gateway token (Principal) and
// listen address, as GET /v1/gateways answers it.
type RecordedGateway struct {
	// Principal is the id of the operator token (role gateway) that
	// recorded it.
	Principal string `json:"principal"`
	// Index and Time are the entry's.
	Index uint64 `json:"index"`
	Time  string `json:"time"` // RFC 3339
	GatewayConfig
	// FailOpen names its fail_open routes ([] for none).
	FailOpen []string `json:"fail_open"`
	// Recorded counts the gateway.configured entries of this principal
	// and listen address (one per start of the gateway).
	Recorded int `json:"recorded"`
}

// Gateways is the answer of GET /v1/gateways: each gateway's last
// recorded configuration, by principal and then listen address.
type Gateways struct {
	TreeSize uint64            `json:"tree_size"` // the entries read: [0, TreeSize)
	Gateways []RecordedGateway `json:"gateways"`
}
