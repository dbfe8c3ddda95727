"""Appends signed records through Agent.add (the background flusher) and
prints the rate; docs/sdk-bench.sh runs it beside the Go and TypeScript
peers against one server.

    python3 bench.py AGENT.key [URL] [N] [BATCH]
"""
import sys
import time

import agentlog

key = agentlog.load_agent_key(sys.argv[1])
url = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8080"
n = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 100
agent = agentlog.Agent(url, key, task="bench", batch_size=batch, max_in_flight=4, max_buffer=n)
agent.open()
start = time.perf_counter()
futures = [agent.add(agentlog.Record("bench.append", tool="bench", resource=f"items/{i}", outcome="ok", attributes={"i": str(i)})) for i in range(n)]
agent.close()
for f in futures:
    f.result()
el = time.perf_counter() - start
print(f"python: {n} records in {el:.2f} s = {n / el:.0f} records/s")
