// Package checkpoint is the format of the log's checkpoints: it signs and
// verifies them, with the time they carry, and checks a tree head against
// the last signed one. The NTP-anchored clock is package
// checkpoint/clock, the signing schedule package checkpoint/signer; this
// package depends on neither, so verifiers (the Go SDK) can import it
// alone.
//
// # Format
//
// A checkpoint is a signed note (https://c2sp.org/signed-note) whose text is
// the tree head of https://c2sp.org/tlog-checkpoint: the origin, the tree
// size in decimal and the base64 RFC 6962 root hash, one a line. agentlog
// writes no extension lines, which witnesses may refuse.
//
// Two signature lines follow. The first is the log's Ed25519 note signature,
// made with the key named after the origin (log.key, verifier key in
// log.pub). The second is the signing time: a https://c2sp.org/tlog-cosignature
// v1 signature by a separate Ed25519 timestamp key named origin + "/time"
// (time.key, verifier key of type 0x04 in time.pub). Its signature bytes are
// the 8-byte big-endian POSIX time in seconds followed by an Ed25519
// signature over
//
//	cosignature/v1
//	time <seconds>
//	<checkpoint text>
//
// so standard tools read and verify the time like any witness cosignature
// (github.com/transparency-dev/formats/note.NewVerifierForCosignatureV1 and
// CoSigV1Timestamp). The time comes from a clock disciplined by several NTP
// servers (package checkpoint/clock), not from the host's clock. Witness cosignatures are added after
// these two lines by the witness client.
//
// # Example
//
// The first checkpoint of a log with origin example.com/agentlog, whose log
// verifier key is
//
//	example.com/agentlog+caec1adf+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c
//
// and timestamp verifier key is
//
//	example.com/agentlog/time+0ee49295+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU
//
// signed at 2026-01-02T03:04:05Z (POSIX time 1767323045) over the empty tree,
// is
//
//	example.com/agentlog
//	0
//	47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
//
//	— example.com/agentlog yuwa36ecKgE84U2pPn4T+/6MNk1v3/NFt50k7YIvMrHsh2PCuTzAAn3aI3D3S9XwRQKpbeQJOw74j+lvoG0IfU+/GQw=
//	— example.com/agentlog/time DuSSlQAAAABpVzWl2iY6ztq9LyKwcoS1cNR3QBnUIqzxdjaP2lCJmPgtH0W1YBeuojSbfxrml4l8X+K/rjPngqrtwffJvp8H17o6BQ==
//
// Decoded, the second signature is 76 bytes: the key ID 0ee49295, the time
// 0x00000000695735a5 (1767323045) and the Ed25519 signature. The package
// example reproduces this note from the two private keys, so it cannot drift
// from the code.
//
// # Keys
//
// [LoadOrCreateKeys] creates both keys in the data directory on first start
// and reuses them afterwards; it refuses secret files that others may read
// and a log key named after another origin. Keys for tests and tools come
// from note.GenerateKey and [GenerateTimeKey] and are loaded with [NewKeys].
//
// # Never fork
//
// A log must never sign two inconsistent checkpoints. [CheckConsistent]
// compares a candidate tree head with the last signed checkpoint using the
// tree's consistency proof and returns an [*InconsistentError] holding both
// as evidence. The signing loop (package checkpoint/signer) runs it when it starts (so a restored old data
// directory is refused) and before every signature, stores each checkpoint
// durably before publishing it, and signs again at least every Refresh
// interval so the timestamp stays fresh when the log is idle.
package checkpoint
