// Package agentlog holds agentlog's wire formats: everything a client, a
// verifier or another implementation must produce or read byte for byte,
// and nothing else. It depends only on the standard library, so SDKs,
// verifiers and the server share one definition of each format. The
// server's behaviour (validation limits beyond the formats, storage,
// signing) lives in package log and its subpackages; the Go SDK is package
// client.
//
// # Leaves
//
// Every entry of the log is one leaf of an RFC 6962 tree
// (c2sp.org/tlog-tiles entry bundles hold the leaves): a compact JSON
// object of at most [MaxLeafSize] bytes whose keys come in a fixed order,
//
//	time kind principal role token_id agent session task config seq action tool resource outcome attributes sig
//
// empty ones left out. time is the log's clock at sequencing, RFC 3339 in
// UTC with nine fractional digits ([TimeLayout]), non-decreasing with the
// index; kind is one of the Kind constants. Strings are escaped as
// encoding/json does without its HTML escaping (quotes, backslashes and
// U+2028/U+2029 only: the log refuses control characters), attributes is a
// compact JSON object as the agent sent it, sig is standard base64.
// [Leaf] is the decoded form, [Leaf.Append] the canonical encoder and
// [ParseLeaf] the decoder; [ReadRawFields] reads the string fields of a
// canonical leaf without decoding it. Field names follow the OpenTelemetry
// GenAI conventions where one fits: agent is gen_ai.agent.id, tool is
// gen_ai.tool.name (docs/api.md has the whole mapping).
//
// # Appending
//
// POST /v1/entries takes an [AppendRequest] with a session credential and
// answers an [AppendResponse] once every entry is durable. A record may be
// signed by the agent's Ed25519 key over [RecordSignedBytes]; since those
// bytes are built from fields the leaf carries, anyone holding a leaf and
// the agent's registered key can check it ([Leaf.VerifySignature]).
//
// # Credentials and sessions
//
// Operator tokens and session credentials are PREFIX + ID + "." + SECRET
// ([TokenPrefix], [SessionPrefix], [ParseCredential]). An agent opens a
// session with a [SessionRequest] signed over [SessionRequest.SignedBytes]
// and gets a [SessionInfo]. Its key lives in a one-line key file
// ([FormatKeyFile], [ParseKeyFile]); agent ids obey [ValidID].
//
// # Tiles
//
// Hash tiles and entry bundles are addressed as c2sp.org/tlog-tiles says:
// [TilePath] formats and parses the part of the URL after "tile/", and
// [TileWidthAt] says how wide a tile is in a tree of a given size.
//
// # Queries
//
// GET /v1/query takes the filter fields [QueryFields] and the parameters
// [QueryParams] and answers NDJSON: one [QueryMatch] per line, then one
// line {"summary": [QuerySummary]}.
package agentlog
