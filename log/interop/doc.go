// Package interop tests agentlog's capture paths against the official
// SDKs as independent peers: the gateway in front of an MCP server built
// with github.com/modelcontextprotocol/go-sdk, called by that SDK's client,
// and OTLP/HTTP ingest fed by the OpenTelemetry Go SDK's otlptracehttp
// exporter. It is a separate module so those SDKs stay out of agentlog's
// go.mod; "make interop" runs it.
package interop
