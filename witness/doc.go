// Package witness implements transparency log witnessing for agentlog: the
// witness itself (https://c2sp.org/tlog-witness), witness policies
// (https://c2sp.org/tlog-policy), and the log's client that collects
// cosignatures.
//
// # The witness
//
// A [Witness] follows a set of logs, each known by its origin and verifier
// keys. A log submits each new checkpoint with
//
//	POST /add-checkpoint
//
//	old 5
//	<base64 hash>            (consistency proof from size 5, at most 63 lines)
//
//	example.com/log
//	8
//	<base64 root hash>
//
//	— example.com/log <base64 signature>
//
// and the witness answers, after checking in this order:
//
//	404  the origin is not a log it follows
//	403  no valid signature by a key of that log
//	429  the log exceeded its rate limit
//	400  malformed request, more than 63 proof lines, or old size > checkpoint size
//	409  old size is not the size it last cosigned; body "<that size>\n",
//	     Content-Type text/x.tlog.size (so a log that lost track learns it)
//	422  the consistency proof does not verify, the same size comes with
//	     another root, or a size-0 checkpoint lacks the empty tree's root
//	413  the body is larger than the cap (64 KiB by default)
//	200  body: its cosignature line, "— <witness name> <base64>\n"
//
// The cosignature is a https://c2sp.org/tlog-cosignature v1 signature: an
// 8-byte big-endian POSIX time then an Ed25519 signature over
// "cosignature/v1\ntime <seconds>\n" and the checkpoint body. agentlog's
// witness takes the time from the NTP-anchored clock of package
// checkpoint/clock through a [checkpoint.TimeSigner]; standard tools verify it with
// github.com/transparency-dev/formats/note.NewVerifierForCosignatureV1.
//
// The check of the old size and the update of the latest cosigned
// checkpoint are one compare-and-swap per log, and the new state is durable
// (fsynced, see [FileStore]) before the cosignature leaves the witness, so
// neither a race between two submissions nor a crash can make it cosign a
// checkpoint inconsistent with one it cosigned before. The witness serves
// its view of each log at GET /<hex SHA-256 of origin>/checkpoint, with the
// log's signatures and its own cosignature. [Server] is the HTTP interface;
// cmd/agentlog-witness the daemon.
//
// # Policies
//
// A [Policy] says which logs and witnesses to trust and how many
// cosignatures a checkpoint needs:
//
//	log example.com/log+a5a3f32c+AQ...            https://log.example.com
//	witness W1 w1.example/witness+0d1f3c0e+BP...  https://w1.example
//	witness W2 w2.example/witness+6e12a0d2+BO...  https://w2.example
//	witness W3 w3.example/witness+b09c5b31+BK...  https://w3.example
//	group operators 2 W1 W2 W3
//	quorum operators
//
// [Policy.Verify] accepts a checkpoint signed by one of the logs whose
// valid cosignatures satisfy the quorum, ignoring signatures by other keys
// and cosignatures that do not verify.
//
// # The log's side
//
// A [Client] gets every checkpoint the log signs ([Client.Submit], which
// never blocks) and pushes the newest to each witness of the policy that
// has a URL, one goroutine per witness, with the consistency proof from
// the size that witness holds (learnt from a 409 when unknown); failures are
// retried with exponential backoff, so a dead witness costs nothing but its
// own retries. policy.Verified cosignatures are merged into the checkpoint
// ([AddSignatures]) and the result is published once it meets the quorum.
// Whether a checkpoint is published log-signed while its quorum is missing
// is [ClientConfig.PublishUnwitnessed].
package witness
