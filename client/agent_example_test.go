package client_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http/httptest"
	"os"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/api"
	"github.com/agentlog/agentlog/log/identity"
)

// An agent appends its actions under a task session. Here the log runs in
// process; in production baseURL is the agentlog server and the key comes
// from "agentlog agent register --key-out FILE" (agentlog.ParseKeyFile).
func ExampleAgent() {
	dir, _ := os.MkdirTemp("", "agentlog-example")
	defer os.RemoveAll(dir)
	l, _ := alog.Open(alog.Config{Dir: dir})
	defer l.Close()
	ids, _ := identity.Open(l.DB(), l, identity.Config{})
	ids.AddStatic("admin-token", alog.Principal{ID: "admin", Role: api.RoleAdmin})
	srv := httptest.NewServer(api.New(api.Config{Log: l, Identity: ids}))
	defer srv.Close()
	ctx := context.Background()

	// The operator provisions the agent (agentlog agent register).
	key, _ := agentlog.GenerateAgentKey("billing-bot")
	admin, _ := client.New(srv.URL, client.WithToken("admin-token"))
	admin.RegisterAgent(ctx, client.AgentRegistration{ID: "billing-bot", Owner: "payments-team", PublicKey: key.Public().(ed25519.PublicKey)})
	admin.ApproveAgent(ctx, "billing-bot")

	// The agent opens a session for its task, appends, and closes it.
	agent, err := client.NewAgent(srv.URL, client.AgentConfig{ID: "billing-bot", Key: key, Task: "refund-7731", Sign: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := agent.Append(ctx,
		client.Record{Action: "payments.refund", Tool: "stripe", Resource: "charges/ch_42", Outcome: "success"},
		client.Record{Action: "email.send", Tool: "smtp", Resource: "customers/42"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("appended %d records for task %s\n", len(res), agent.Session().Task)
	if err := agent.Close(ctx); err != nil {
		fmt.Println(err)
	}
	// Output: appended 2 records for task refund-7731
}
