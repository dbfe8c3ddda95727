// Package interop tests agentlog's witness and witness client against
// other implementations of c2sp.org/tlog-witness:
//
//   - github.com/transparency-dev/witness, in both directions: its witness
//     with agentlog's client, its client with agentlog's witness;
//   - github.com/transparency-dev/tessera (POSIX driver) as the log: a
//     Tessera log whose witness policy names agentlog's witness publishes
//     checkpoints it cosigned, verified with formats/note;
//   - Tessera's client (github.com/transparency-dev/tessera/client) reading
//     an agentlog log mirrored to an Object Lock bucket (package
//     log/mirror) over plain HTTP, as a static c2sp.org/tlog-tiles log.
//
// It is a separate module so that their dependencies (newer pre-release
// versions of transparency-dev/formats and merkle, OpenTelemetry, klog)
// stay out of agentlog's go.mod. Run it with
//
//	make interop
//
// or "cd witness/interop && go test ./...".
package interop
