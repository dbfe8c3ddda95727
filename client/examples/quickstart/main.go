// Command quickstart is the Go agent of the README's quickstart, the peer
// of client/python/examples/quickstart.py and
// client/typescript/examples/quickstart.ts:
//
//	go run ./client/examples/quickstart AGENT.key [URL]
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: quickstart AGENT.key [URL]")
	}
	url := "http://127.0.0.1:8080"
	if len(os.Args) > 2 {
		url = os.Args[2]
	}
	text, err := os.ReadFile(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	id, key, err := agentlog.ParseKeyFile(string(text))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	agent, err := client.NewAgent(url, client.AgentConfig{ID: id, Key: key, Task: "refund-7731", Sign: true})
	if err != nil {
		log.Fatal(err)
	}
	res, err := agent.Append(ctx, client.Record{Action: "db.query", Tool: "sql", Resource: "customers/42", Outcome: "ok", Attributes: client.Attributes(map[string]string{"rows": "3"})})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("appended as entry %d\n", res[0].Index)
	if err := agent.Close(ctx); err != nil {
		log.Fatal(err)
	}
}
