"""Integration tests against the real server binary (built by the test):
provisioning with the CLI, 10,000 records from 32 concurrent threads across
a SIGKILL and restart of the server, exactly once and each with a verified
inclusion proof; revocation; an unreachable log; tool-call recording."""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent.futures import Future
from pathlib import Path

import agentlog
from agentlog import verify as v

from .server import Binary, Server

binary: Binary | None = None


def setUpModule() -> None:
    global binary
    binary = Binary()


def tearDownModule() -> None:
    if binary:
        binary.remove()


class Integration(unittest.TestCase):
    def setUp(self) -> None:
        assert binary is not None
        self.bin = binary
        self.tmp = tempfile.TemporaryDirectory(prefix="agentlog-py-")
        self.srv = Server(binary, os.path.join(self.tmp.name, "data"))
        self._auditor: agentlog.Auditor | None = None

    def tearDown(self) -> None:
        if self._auditor:
            self._auditor.close()
        self.srv.kill()
        self.tmp.cleanup()

    def register(self, agent: str) -> agentlog.AgentKey:
        path = os.path.join(self.tmp.name, agent + ".key")
        self.bin.cli("agent", "register", "--server", self.srv.url, "--admin-token-file", self.srv.admin_token_file, "--id", agent, "--key-out", path)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        return agentlog.load_agent_key(path)

    def auditor(self) -> agentlog.Auditor:
        if self._auditor is None:
            self._auditor = agentlog.Auditor(self.srv.url, self.srv.read("admin.token"))
        return self._auditor

    def checkpoint_covering(self, size: int) -> agentlog.VerifiedCheckpoint:
        """Waits (up to 30 s) for a verified checkpoint of at least size."""
        a = self.auditor()
        deadline = time.monotonic() + 30
        while True:
            cp = a.verified_checkpoint(self.srv.read("log.pub"), self.srv.read("time.pub"))
            if cp.size >= size or time.monotonic() > deadline:
                return cp
            time.sleep(0.1)

    def test_concurrent_appends_across_a_crash(self) -> None:
        key = self.register("py-bot")
        agent = agentlog.Agent(self.srv.url, key, "T-crash", batch_size=100, max_retries=12, timeout=10)
        total, workers = 10000, 32
        futures: dict[str, Future[agentlog.Receipt]] = {}
        lock = threading.Lock()
        acked = threading.Semaphore(0)
        done = [0]

        def on_done(_: object) -> None:
            with lock:
                done[0] += 1
                if done[0] == 3000:
                    acked.release()

        def work(w: int) -> None:
            for n in range(w, total, workers):
                rid = f"r{n}"
                f = agent.add(agentlog.Record("py.append", tool="pytest", resource=f"items/{n}", outcome="ok", attributes={"id": rid, "worker": w}))
                f.add_done_callback(on_done)
                with lock:
                    futures[rid] = f

        threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
        for t in threads:
            t.start()
        # Kill the server once 3,000 records are acknowledged, mid-run.
        self.assertTrue(acked.acquire(timeout=120), "3,000 records were not acknowledged")
        with lock:
            at_kill = done[0]
        self.srv = self.srv.restart()
        for t in threads:
            t.join()
        agent.flush(timeout=180)
        agent.close()
        self.assertLess(at_kill, total, "the server was killed after the run, not during it")

        receipts = {rid: f.result() for rid, f in futures.items()}
        self.assertEqual(len(receipts), total)
        size = max(r.index for r in receipts.values()) + 1
        # A query with proofs is against one checkpoint: let the log sign
        # the one covering its whole tree (the session's close included)
        # so that no new one appears between the pages.
        q0 = self.auditor().query(limit=1, all_pages=False)
        list(q0)
        assert q0.summary is not None
        cp = self.checkpoint_covering(q0.summary["tree_size"])
        self.assertGreaterEqual(cp.size, size)

        # Every entry of the agent, each with an inclusion proof against the
        # checkpoint the query's summary names (verified like any other).
        q = self.auditor().query(agent="py-bot", kind="action", proof=True)
        matches = list(q)
        assert q.summary is not None
        qcp = agentlog.verify_checkpoint(q.summary["checkpoint"], self.srv.read("log.pub"), self.srv.read("time.pub"))
        self.assertGreaterEqual(qcp.size, size)
        seen: collections.Counter[str] = collections.Counter()
        by_index: dict[int, str] = {}
        for m in matches:
            assert m.inclusion_proof is not None
            v.verify_inclusion(m.index, qcp.size, agentlog.leaf_hash(m.entry), m.inclusion_proof, qcp.root)
            v.verify_leaf_signature(m.entry, key.public_key)
            by_index[m.index] = m.entry
            seen[json.loads(m.entry)["attributes"]["id"]] += 1
        self.assertEqual(len(matches), total, "the log holds other records of the agent than those reported")
        for rid, r in receipts.items():
            self.assertEqual(seen[rid], 1, f"record {rid} is in the log {seen[rid]} times")
            self.assertEqual(base64.b64encode(agentlog.leaf_hash(by_index[r.index])).decode(), r.leaf_hash)

    def test_revoked_agent(self) -> None:
        key = self.register("py-revoked")
        agent = agentlog.Agent(self.srv.url, key, "T-revoke")
        self.assertEqual(len(agent.append(agentlog.Record("py.before"))), 1)
        self.bin.cli("agent", "revoke", "--server", self.srv.url, "--admin-token-file", self.srv.admin_token_file, "--id", "py-revoked")
        with self.assertRaises(agentlog.SessionEndedError) as cm:
            agent.append(agentlog.Record("py.after"))
        self.assertEqual(cm.exception.status, 401)
        self.assertIn("revoked", cm.exception.server_message)
        # The buffered path sees it too.
        with self.assertRaises(agentlog.SessionEndedError):
            agent.add({"action": "py.after"}).result(timeout=30)
        with self.assertRaises(agentlog.SessionEndedError):
            agent.flush()

    def test_declared_configuration(self) -> None:
        # The CLI registers the agent with a configuration file whose system
        # prompt is a file; the SDK computes the same digest from the same
        # files, and the server, enforcing it, accepts the session.
        d = Path(self.tmp.name, "cfg")
        d.mkdir()
        Path(d, "system.txt").write_text("You are a careful agent.\n")
        cfg = Path(d, "agent.json")
        cfg.write_text('{"model": {"name": "m", "version": "1"}, "prompts": {"system": {"file": "system.txt"}}, "parameters": {"temperature": 0.20}}')
        path = os.path.join(self.tmp.name, "py-config.key")
        self.bin.cli("agent", "register", "--server", self.srv.url, "--admin-token-file", self.srv.admin_token_file,
                     "--id", "py-config", "--key-out", path, "--config", str(cfg), "--policy", "config=enforce")
        key = agentlog.load_agent_key(path)
        agent = agentlog.Agent(self.srv.url, key, "T-config", config=cfg)
        self.assertEqual(agent.config, agentlog.load_config(cfg).digest)
        r = agent.append(agentlog.Record("py.configured"))[0]
        leaf = json.loads(self.auditor().entry(r.index))
        self.assertEqual(leaf["config"], agent.config)
        agent.close()
        # Another configuration (the same prompt inline) is refused.
        other = agentlog.Agent(self.srv.url, key, "T-config-2", config={"model": {"name": "m", "version": "1"}, "prompts": {"system": {"text": "You are a careful agent.\n"}}})
        with self.assertRaises(agentlog.HTTPError) as cm:
            other.append(agentlog.Record("py.unapproved"))
        self.assertEqual(cm.exception.status, 403)

    def test_refused_records_leave_no_gap(self) -> None:
        key = self.register("py-gap")
        with agentlog.Agent(self.srv.url, key, "T-gap") as agent:
            agent.append(agentlog.Record("py.one"))
            with self.assertRaises(agentlog.HTTPError) as cm:
                agent.append(agentlog.Record("py.bad\x01"), agentlog.Record("py.fine"))
            self.assertEqual(cm.exception.status, 400)
            self.assertIn("control character", cm.exception.server_message)
            agent.append(agentlog.Record("py.two"))
        seqs = [json.loads(m.entry)["seq"] for m in self.auditor().query(agent="py-gap", kind="action")]
        self.assertEqual(seqs, [1, 2], "a refused request must not leave a gap in the sequence numbers")

    def test_consistency_between_checkpoints(self) -> None:
        key = self.register("py-cons")
        with agentlog.Agent(self.srv.url, key, "T-cons") as agent:
            r1 = agent.append(agentlog.Record("py.one"))
            old = self.checkpoint_covering(r1[0].index + 1)
            r2 = agent.append(*[agentlog.Record("py.two", attributes={"n": i}) for i in range(50)])
        new = self.checkpoint_covering(r2[-1].index + 1)
        a = self.auditor()
        a.verify_consistency(old, new)
        a.verify_inclusion(new, r2[7].index, a.entry(r2[7].index))
        forged = agentlog.VerifiedCheckpoint(new.origin, new.size, bytes(32), None)
        with self.assertRaises(agentlog.VerificationError) as cm:
            a.verify_consistency(old, forged)
        self.assertEqual(cm.exception.reason, "root-mismatch")

    def test_tool_calls(self) -> None:
        key = self.register("py-tools")
        agent = agentlog.Agent(self.srv.url, key, "T-tools", flush_interval=0.05)

        @agent.tool("crm.lookup", resource=lambda cid: f"customers/{cid}")
        def lookup(cid: int) -> dict[str, int]:
            if cid < 0:
                raise KeyError(cid)
            return {"id": cid}

        @agent.tool("crm.async")
        async def alookup(cid: int) -> int:
            await asyncio.sleep(0)
            return cid

        agentlog.set_default_agent(agent)

        @agentlog.tool("crm.default")
        def default_tool() -> str:
            return "x"

        self.assertEqual(lookup(42), {"id": 42})
        with self.assertRaises(KeyError):
            lookup(-1)
        self.assertEqual(asyncio.run(alookup(7)), 7)
        self.assertEqual(default_tool(), "x")
        with agent.tool_call("crm.manual", resource="customers/9") as call:
            call.outcome = "partial"
            call.attributes["rows"] = 3
        assert call.receipt is not None

        async def in_loop() -> None:
            async with agent.tool_call("crm.async_block") as c:
                c.outcome = "ok"
            assert c.receipt is not None
        asyncio.run(in_loop())
        agent.close()
        agentlog.set_default_agent(None)

        got = {}
        for m in self.auditor().query(agent="py-tools", kind="action"):
            e = json.loads(m.entry)
            got[(e["tool"], e.get("outcome"))] = e
            self.assertEqual(e["action"], "tool.call")
            self.assertIn("latency_ms", e["attributes"])
            v.verify_leaf_signature(m.entry, key.public_key)
        self.assertEqual(got[("crm.lookup", "ok")]["resource"], "customers/42")
        self.assertEqual(got[("crm.lookup", "error: KeyError")]["resource"], "customers/-1")
        self.assertIn(("crm.async", "ok"), got)
        self.assertIn(("crm.default", "ok"), got)
        self.assertEqual(got[("crm.manual", "partial")]["attributes"]["rows"], 3)
        self.assertIn(("crm.async_block", "ok"), got)
        seqs = sorted(e["seq"] for e in got.values())
        self.assertEqual(seqs, list(range(1, len(got) + 1)))

    def test_signed_attributes_survive_the_server(self) -> None:
        # Attribute bytes the server must keep as sent for the signature to verify.
        key = self.register("py-attrs")
        with agentlog.Agent(self.srv.url, key, "T-attrs") as agent:
            attrs = {"z": 1, "a": {"nested": [True, None, "<&>é😀\u2028"]}, "ctl": "tab\tnl\n", "big": 2**63}
            r = agent.append(agentlog.Record("py.attrs", tool="t", resource="r/1", outcome="ok", attributes=attrs))
        leaf = self.auditor().entry(r[0].index)
        v.verify_leaf_signature(leaf, key.public_key)
        self.assertEqual(base64.b64encode(agentlog.leaf_hash(leaf)).decode(), r[0].leaf_hash)


    def test_examples(self) -> None:
        # The README's examples run as written against the server.
        key = os.path.join(self.tmp.name, "py-example.key")
        self.register("py-example")
        examples = Path(__file__).resolve().parents[1] / "examples"
        env = dict(os.environ, PYTHONPATH=str(examples.parent))
        out = subprocess.run([sys.executable, str(examples / "quickstart.py"), key, self.srv.url], env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"appended as entry \d+")
        out = subprocess.run([sys.executable, str(examples / "agent_loop.py"), key, self.srv.data, self.srv.url], env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("4 records of task ticket-4711 verified", out.stdout)


class Unreachable(unittest.TestCase):
    def test_bounded_buffer_then_visible_errors(self) -> None:
        # A listening socket that never answers: requests hang until their timeout.
        ln = socket.socket()
        ln.bind(("127.0.0.1", 0))
        ln.listen(64)
        self.addCleanup(ln.close)
        url = "http://127.0.0.1:%d" % ln.getsockname()[1]
        key = agentlog.parse_agent_key("AGENTLOG-AGENT-KEY+ghost+" + base64.b64encode(bytes(32)).decode())
        agent = agentlog.Agent(url, key, "T-down", max_buffer=5, max_retries=1, timeout=1)
        futs = [agent.add(agentlog.Record("py.lost")) for _ in range(5)]
        with self.assertRaises(agentlog.BufferFullError):
            agent.add(agentlog.Record("py.sixth"))
        for f in futs:
            with self.assertRaises(agentlog.UnreachableError):
                f.result(timeout=60)
        with self.assertRaises(agentlog.UnreachableError):
            agent.flush()
        # Once the failures are reported, the buffer takes records again.
        agent.add(agentlog.Record("py.again"))
        with self.assertRaises(agentlog.UnreachableError):
            agent.close()

        # Nothing listening at all: connection refused, same error.
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
        dead.close()
        a2 = agentlog.Agent("http://127.0.0.1:%d" % port, key, "T-down", max_retries=2)
        with self.assertRaises(agentlog.UnreachableError) as cm:
            a2.append(agentlog.Record("py.refused"))
        self.assertIn("unreachable after 3 attempts", str(cm.exception))
        a2.close()


if __name__ == "__main__":
    unittest.main()
