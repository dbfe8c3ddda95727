"""The ten-line example of the README: python3 quickstart.py AGENT.key [URL]"""
import sys

import agentlog

key = agentlog.load_agent_key(sys.argv[1])
with agentlog.Agent(sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8080", key, task="refund-7731") as agent:
    [receipt] = agent.append(agentlog.Record("db.query", tool="sql", resource="customers/42", outcome="ok", attributes={"rows": 3}))
    print(f"appended as entry {receipt.index}, leaf hash {receipt.leaf_hash}")

    @agent.tool("crm.lookup", resource=lambda cid: f"customers/{cid}")
    def lookup(cid: int) -> dict[str, int]:
        return {"id": cid, "open_tickets": 2}

    print("crm.lookup ->", lookup(42))
