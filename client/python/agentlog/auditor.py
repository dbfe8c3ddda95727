"""The auditor side: checkpoints, entries, proofs and queries, each verified
against the log's keys before it is believed."""

from __future__ import annotations

import base64
import json
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from ._http import Transport
from .errors import AgentlogError
from .keys import rfc3339
from .verify import KeyLike, Policy, VerifiedCheckpoint, leaf_hash, raw_members, verify_checkpoint, verify_consistency, verify_inclusion


def _hashes(j: Any, what: str) -> list[bytes]:
    hs = j.get("hashes") if isinstance(j, dict) else None
    if not isinstance(hs, list):
        raise AgentlogError(f"the server's {what} has no hashes")
    out = []
    for h in hs:
        b = base64.b64decode(h) if isinstance(h, str) else b""
        if len(b) != 32:
            raise AgentlogError(f"the server's {what} holds a hash that is not 32 bytes")
        out.append(b)
    return out


@dataclass(frozen=True)
class QueryMatch:
    """One entry a query matched; ``entry`` is the leaf byte for byte."""

    index: int
    entry: str
    inclusion_proof: list[bytes] | None = None


class QueryStream:
    """The matches of a query as they stream in; ``summary`` (the answer's
    last line: tree_size, start, end, next, matches, cursor, checkpoint) is
    set once an answer is complete. An answer cut short raises."""

    def __init__(self, t: Transport, token: str | None, params: dict[str, str], all_pages: bool) -> None:
        self._t, self._token, self._params, self._all = t, token, params, all_pages
        self.summary: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[QueryMatch]:
        params = dict(self._params)
        while True:
            path = "/v1/query?" + urllib.parse.urlencode(params)
            conn, r = self._t.stream("GET", path, token=self._token)
            summary = None
            try:
                while True:
                    line = r.readline(4 << 20)
                    if not line:
                        break
                    text = line.decode("utf-8").strip()
                    if not text:
                        continue
                    if text.startswith('{"summary":'):
                        summary = json.loads(text)["summary"]
                        continue
                    m = raw_members(text)
                    if m is None or "index" not in m or "entry" not in m:
                        raise AgentlogError(f"the query answer has a line that is not a match: {text[:200]}")
                    proof = m.get("inclusion_proof")
                    yield QueryMatch(int(m["index"]), m["entry"], [base64.b64decode(h) for h in json.loads(proof)] if proof else None)
            finally:
                r.close()
                conn.close()
            if summary is None:
                raise AgentlogError("the query answer ended without its summary line: it is incomplete")
            if summary.get("error"):
                raise AgentlogError(f"query: {summary['error']}")
            self.summary = summary
            if not self._all or not summary.get("cursor"):
                return
            params["cursor"] = summary["cursor"]


class Auditor:
    """Reads and verifies what the log serves. token is an auditor or admin
    token (``agentlog token create --role auditor``); checkpoints, tiles and
    proofs need none."""

    def __init__(self, server: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self._t = Transport(server, timeout)
        self._token = token.strip() if token else None

    def close(self) -> None:
        """Closes the kept-alive connections."""
        self._t.close()

    def __enter__(self) -> "Auditor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str) -> bytes:
        return self._t.request("GET", path, token=self._token)

    def checkpoint(self) -> str:
        """The raw signed checkpoint."""
        return self._get("/checkpoint").decode()

    def verified_checkpoint(self, log_key: KeyLike | None = None, time_key: KeyLike | None = None,
                            policy: str | Policy | None = None) -> VerifiedCheckpoint:
        """Fetches the checkpoint and verifies it (see verify_checkpoint)."""
        return verify_checkpoint(self.checkpoint(), log_key=log_key, time_key=time_key, policy=policy)

    def entry(self, index: int) -> str:
        """The leaf at index, byte for byte."""
        m = raw_members(self._get(f"/v1/entries/{index}").decode())
        if not m or "entry" not in m:
            raise AgentlogError(f"the server's answer for entry {index} holds no entry")
        return m["entry"]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return _hashes(json.loads(self._get(f"/v1/proof/inclusion?index={index}&size={size}")), "inclusion proof")

    def consistency_proof(self, old: int, size: int) -> list[bytes]:
        return _hashes(json.loads(self._get(f"/v1/proof/consistency?old={old}&size={size}")), "consistency proof")

    def verify_inclusion(self, cp: VerifiedCheckpoint, index: int, leaf: str | bytes) -> None:
        """Fetches and verifies the inclusion of leaf at index under a verified checkpoint."""
        verify_inclusion(index, cp.size, leaf_hash(leaf), self.inclusion_proof(index, cp.size), cp.root)

    def verify_consistency(self, older: VerifiedCheckpoint, newer: VerifiedCheckpoint) -> None:
        """Fetches and verifies a consistency proof between two verified checkpoints."""
        p = [] if older.size == 0 or older.size >= newer.size else self.consistency_proof(older.size, newer.size)
        verify_consistency(older.size, newer.size, p, older.root, newer.root)

    def query(self, *, all_pages: bool = True, **filters: str | int | bool | datetime | None) -> QueryStream:
        """Runs GET /v1/query with the auditor filters (agent, action, tool,
        resource, outcome, kind, session, task, from_, to, outside_hours, tz,
        weekdays, limit, cursor, proof) and streams the matches, following
        the cursor page after page unless all_pages is False."""
        params: dict[str, str] = {}
        for k, v in filters.items():
            if v is None or v is False:
                continue
            k = k.rstrip("_")  # from_ is "from"
            params[k] = rfc3339(v) if isinstance(v, datetime) else "true" if v is True else str(v)
        return QueryStream(self._t, self._token, params, all_pages)
