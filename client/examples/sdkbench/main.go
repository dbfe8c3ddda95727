// Command sdkbench appends signed records through client.Agent in batches
// and prints the rate: the Go peer of client/python/examples/bench.py and
// client/typescript/examples/bench.ts, which docs/sdk-bench.sh runs side by
// side against one server.
//
//	go run ./client/examples/sdkbench -key AGENT.key [-server URL] [-n 20000] [-batch 100] [-conc 4]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
)

func main() {
	keyFile := flag.String("key", "", "agent key file")
	server := flag.String("server", "http://127.0.0.1:8080", "log server URL")
	n := flag.Int("n", 20000, "records to append")
	batch := flag.Int("batch", 100, "records per request")
	conc := flag.Int("conc", 4, "goroutines adding records (requests in flight)")
	flag.Parse()
	text, err := os.ReadFile(*keyFile)
	if err != nil {
		log.Fatal(err)
	}
	id, key, err := agentlog.ParseKeyFile(string(text))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	a, err := client.NewAgent(*server, client.AgentConfig{ID: id, Key: key, Task: "bench", Sign: true, BatchSize: *batch})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := a.Open(ctx); err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < *conc; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < *n; i += *conc {
				rec := client.Record{Action: "bench.append", Tool: "bench", Resource: "items/" + strconv.Itoa(i), Outcome: "ok",
					Attributes: client.Attributes(map[string]string{"i": strconv.Itoa(i)})}
				if _, err := a.Add(ctx, rec); err != nil {
					log.Fatal(err)
				}
			}
		}(g)
	}
	wg.Wait()
	if err := a.Close(ctx); err != nil {
		log.Fatal(err)
	}
	el := time.Since(start)
	fmt.Printf("go: %d records in %.2f s = %.0f records/s\n", *n, el.Seconds(), float64(*n)/el.Seconds())
}
