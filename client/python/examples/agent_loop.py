"""An agent loop recorded in agentlog: a toy planner picks tools, every tool
call is recorded with its outcome and latency (decorator, sync and asyncio),
and the agent's final answer is appended too. At the end an auditor proves
each record is in the log under a verified checkpoint.

    python3 agent_loop.py AGENT.key DATA_DIR [URL]

DATA_DIR is the server's data directory (for log.pub, time.pub and the admin
token the auditor uses); URL defaults to http://127.0.0.1:8080.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import agentlog

key_file, data = sys.argv[1], sys.argv[2]
url = sys.argv[3] if len(sys.argv) > 3 else "http://127.0.0.1:8080"
agent = agentlog.Agent(url, agentlog.load_agent_key(key_file), task="ticket-4711", flush_interval=0.05)
agentlog.set_default_agent(agent)

CUSTOMERS = {42: {"name": "Zoë", "plan": "pro"}}


@agentlog.tool("crm.lookup", resource=lambda cid: f"customers/{cid}")
def crm_lookup(cid: int) -> dict[str, str]:
    return CUSTOMERS[cid]  # a KeyError is recorded as outcome "error: KeyError"


@agentlog.tool("billing.refund", resource=lambda cid, amount: f"customers/{cid}/invoices")
async def refund(cid: int, amount: int) -> str:
    await asyncio.sleep(0.01)  # the payment provider
    return f"refunded {amount} to {CUSTOMERS[cid]['name']}"


def plan(ticket: str) -> list[tuple[str, tuple[object, ...]]]:
    """A stand-in for the model: which tools to call for the ticket."""
    return [("crm.lookup", (42,)), ("crm.lookup", (7,)), ("billing.refund", (42, 30))]


async def run(ticket: str) -> str:
    notes = []
    for tool, args in plan(ticket):
        try:
            if tool == "crm.lookup":
                notes.append(str(crm_lookup(*args)))
            else:
                notes.append(await refund(*args))  # type: ignore[arg-type]
        except KeyError as e:
            notes.append(f"no customer {e}")
    answer = "; ".join(notes)
    await agent.aappend(agentlog.Record("agent.answer", outcome="ok", attributes={"ticket": ticket, "answer": answer}))
    return answer


print(asyncio.run(run("customer 42 was charged twice")))
agent.close()

# The auditor's side: every record of this session, proven.
with open(os.path.join(data, "admin.token")) as f:
    auditor = agentlog.Auditor(url, f.read())
log_pub = open(os.path.join(data, "log.pub")).read()
time_pub = open(os.path.join(data, "time.pub")).read()
matches = []
deadline = time.monotonic() + 30
while True:  # the next checkpoint (one a second) covers the records
    q = auditor.query(agent=agent.agent, task="ticket-4711", kind="action", proof=True)
    matches = list(q)
    cp = agentlog.verify_checkpoint(q.summary["checkpoint"], log_pub, time_pub) if q.summary and q.summary.get("checkpoint") else None
    if cp and len(matches) >= 4 and all(m.inclusion_proof is not None for m in matches) or time.monotonic() > deadline:
        break
    time.sleep(0.2)
assert cp is not None
for m in matches:
    agentlog.verify_inclusion(m.index, cp.size, agentlog.leaf_hash(m.entry), m.inclusion_proof or [], cp.root)
    agentlog.verify_leaf_signature(m.entry, agent.key.public_key)
print(f"{len(matches)} records of task ticket-4711 verified in the tree of size {cp.size}")
auditor.close()
