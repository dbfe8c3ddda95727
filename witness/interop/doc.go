// Package interop tests agentlog's witness and witness client against
// github.com/transparency-dev/witness, in both directions.
//
// It is a separate module so that the reference witness's dependencies
// (newer pre-release versions of transparency-dev/formats and merkle,
// OpenTelemetry, klog) stay out of agentlog's go.mod. Run it with
//
//	make interop
//
// or "cd witness/interop && go test ./...".
package interop
