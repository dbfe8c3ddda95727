package agentlog_test

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/agentlog/agentlog"
)

// A record as an agent sends it, signed, and the leaf the log makes of it.
func Example() {
	// The agent's key, as "agentlog agent register --key-out" writes it.
	seed := make([]byte, ed25519.SeedSize)
	agent, key, err := agentlog.ParseKeyFile(agentlog.FormatKeyFile("billing-bot", ed25519.NewKeyFromSeed(seed)))
	if err != nil {
		panic(err)
	}
	rec := agentlog.Record{Action: "payments.refund", Tool: "stripe", Resource: "charges/9", Outcome: "success",
		Attributes: []byte(`{"amount":"12.50"}`), Seq: 1}
	// The session id and task come from the session the agent opened.
	fmt.Printf("%s", agentlog.RecordSignedBytes(agent, "0123456789abcdef", "refund #7", &rec))
	agentlog.SignRecord(key, agent, "0123456789abcdef", "refund #7", &rec)

	// The log adds the time, the kind and who appended it.
	leaf := agentlog.Leaf{Time: time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC), Kind: agentlog.KindAction,
		Principal: agent, Role: "agent", Agent: agent, Session: "0123456789abcdef", Task: "refund #7",
		Seq: rec.Seq, Action: rec.Action, Tool: rec.Tool, Resource: rec.Resource, Outcome: rec.Outcome, Attributes: rec.Attributes}
	fmt.Printf("%s\n", leaf.Append(nil))

	// Anyone with the leaf (signature included) and the registered key can
	// check the agent signed it.
	leaf.Sig = rec.Sig
	parsed, _ := agentlog.ParseLeaf(leaf.Append(nil))
	fmt.Println(parsed.VerifySignature(key.Public().(ed25519.PublicKey)))
	// Output:
	// agentlog record v1
	// agent billing-bot
	// session 0123456789abcdef
	// task refund #7
	// seq 1
	// action payments.refund
	// tool stripe
	// resource charges/9
	// outcome success
	// attributes {"amount":"12.50"}
	// {"time":"2026-11-28T09:30:00.000000000Z","kind":"action","principal":"billing-bot","role":"agent","agent":"billing-bot","session":"0123456789abcdef","task":"refund #7","seq":1,"action":"payments.refund","tool":"stripe","resource":"charges/9","outcome":"success","attributes":{"amount":"12.50"}}
	// <nil>
}

// The URL of the partial entry bundle holding entries 1,234,000 to
// 1,234,066, and of the level-1 hash tile above it, in a tree of 1,234,067
// leaves.
func ExampleTilePath() {
	const size = 1234067
	n := uint64(size / agentlog.TileWidth)
	fmt.Println("/tile/" + agentlog.TilePath{Index: n, Width: agentlog.TileWidthAt(0, n, size), Entries: true}.String())
	fmt.Println("/tile/" + agentlog.TilePath{Level: 1, Index: n / agentlog.TileWidth, Width: agentlog.TileWidthAt(1, n/agentlog.TileWidth, size)}.String())
	p, err := agentlog.ParseTilePath("0/x004/820.p/147")
	fmt.Println(p.Level, p.Index, p.Width, p.Entries, err)
	// Output:
	// /tile/entries/x004/820.p/147
	// /tile/1/018.p/212
	// 0 4820 147 false <nil>
}

// A credential's shape, as a server checks it before looking it up.
func ExampleParseCredential() {
	kind, id, secret, err := agentlog.ParseCredential("agentlog-session-v1.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	fmt.Println(kind, id, len(secret), err)
	_, _, _, err = agentlog.ParseCredential("agentlog-token-v1.xyz.secret")
	fmt.Println(err)
	// Output:
	// session 0123456789abcdef 32 <nil>
	// invalid request: malformed token credential
}
