"""The agent side: an Agent appends its records under task sessions, singly
or in batches through a background flusher, with idempotency keys and safe
retries, and records tool calls with a decorator or a context manager."""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
import json
import os
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, TypeVar, Union

from ._http import NETWORK_ERRORS, Transport
from .config import ConfigLike, config_digest
from .errors import AgentlogError, BufferFullError, HTTPError, PushbackError, SessionEndedError, UnreachableError
from .keys import AgentKey, session_request
from .verify import record_signed_bytes

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Record:
    """One agent action to append."""

    action: str
    tool: str = ""
    resource: str = ""
    outcome: str = ""
    #: Free-form detail: a JSON object.
    attributes: Mapping[str, Any] | None = None


RecordLike = Union[Record, Mapping[str, Any]]


@dataclass(frozen=True)
class Receipt:
    """The server's receipt for one durable entry."""

    index: int
    leaf_hash: str  # base64 RFC 6962 leaf hash
    time: str


@dataclass(frozen=True)
class Session:
    session: str
    credential: str
    agent: str
    task: str
    expires: str


def _record(r: RecordLike) -> Record:
    if isinstance(r, Record):
        return r
    return Record(**dict(r))


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_time(t: str) -> float:
    """POSIX seconds of an RFC 3339 time (any number of fractional digits)."""
    m = _RFC3339.match(t)
    if not m:
        raise ValueError(f"{t!r} is not an RFC 3339 time")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = datetime.fromisoformat(m.group(1) + tz).timestamp()
    return base + (float("0" + m.group(2)) if m.group(2) else 0.0)


def _expires(s: Session) -> float:
    try:
        return parse_time(s.expires)
    except ValueError:
        return 0.0


class Agent:
    """An agent appending its records under task sessions.

    It opens a session on first use with the agent's key, renews it before it
    expires (or once after a 401), numbers each session's records 1, 2, 3, ...
    and signs them. :meth:`append` sends records in one request and returns
    their receipts once durable; :meth:`add` buffers a record for the
    background flusher and returns a Future of its receipt. Every request
    carries an Idempotency-Key and is retried with it after a network error, a
    5xx or a 503 (honouring Retry-After), so a record is appended at most once
    whatever fails.

    When the log is unreachable: retries back off up to ``max_retries`` (about
    20 s by default), then the records' futures fail with
    :class:`UnreachableError`; while records wait, :meth:`add` refuses new
    ones with :class:`BufferFullError` once ``max_buffer`` are waiting. A
    failure is never silent: it is in the record's future, and :meth:`flush`
    and :meth:`close` raise the first failure since the last flush.

    It is safe to use from many threads. Use it as a context manager, or call
    :meth:`close` at the end of the task.
    """

    def __init__(
        self,
        server: str,
        key: AgentKey,
        task: str,
        *,
        ttl_seconds: int = 0,
        config: ConfigLike = "",
        renew_before: float = 60.0,
        sign: bool = True,
        batch_size: int = 100,
        flush_interval: float = 0.2,
        max_in_flight: int = 4,
        max_buffer: int = 10000,
        max_retries: int = 8,
        timeout: float = 30.0,
    ) -> None:
        if not task.strip():
            raise ValueError("an agent needs a task")
        self._t = Transport(server, timeout)
        self.key = key
        self.task = task
        self.ttl_seconds = ttl_seconds
        #: The configuration digest sessions declare (log with change
        #: management): config is a digest, a ConfigDocument, a document as a
        #: mapping or a pathlib.Path of a configuration file (config_digest).
        self.config = config_digest(config)
        self.renew_before = renew_before
        self.sign = sign
        self.batch_size = min(max(batch_size, 1), 10000)
        self.flush_interval = flush_interval
        self.max_buffer = max(max_buffer, 1)
        self.max_retries = max_retries
        self._session: Session | None = None
        self._session_lock = threading.Lock()
        self._seq = 0
        self._cond = threading.Condition()
        self._buf: list[tuple[Record, Future[Receipt]]] = []
        self._waiting = 0
        self._flush_now = 0
        self._errors: list[BaseException] = []
        self._closed = False
        self._pool = ThreadPoolExecutor(max(max_in_flight, 1), thread_name_prefix="agentlog-send")
        self._slots = threading.Semaphore(max(max_in_flight, 1))
        self._flusher: threading.Thread | None = None

    @property
    def agent(self) -> str:
        return self.key.agent

    @property
    def session(self) -> Session | None:
        """The current session, if one is open."""
        return self._session

    # ---- sessions ----

    def open(self) -> Session:
        """Opens a new session now. Appends open one when needed."""
        with self._session_lock:
            return self._open_locked()

    def _open_locked(self) -> Session:
        # Each attempt is signed afresh: a retry of a request whose answer
        # was lost would be refused as a replay (its nonce is spent).
        data = self._retrying("POST", "/v1/sessions", lambda: self._t.request(
            "POST", "/v1/sessions", json.dumps(session_request(self.key, self.task, self.ttl_seconds, config=self.config)[1]).encode()))
        j = json.loads(data)
        if not str(j.get("credential", "")).startswith("agentlog-session-v1."):
            raise AgentlogError("the server's session answer has no session credential")
        s = Session(j["session"], j["credential"], j["agent"], j["task"], j["expires"])
        self._session, self._seq = s, 0
        return s

    def _encode(self, recs: list[Record]) -> tuple[Session, bytes, int]:
        with self._session_lock:
            s = self._session
            if s is None or _expires(s) - time.time() < self.renew_before:
                s = self._open_locked()
            out = []
            for r in recs:
                if not isinstance(r.action, str) or not r.action.strip():
                    raise ValueError("a record needs an action")
                attrs = ""
                if r.attributes:
                    attrs = json.dumps(dict(r.attributes), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
                self._seq += 1
                w: dict[str, Any] = {"action": r.action}
                for k in ("tool", "resource", "outcome"):
                    if getattr(r, k):
                        w[k] = getattr(r, k)
                if attrs:
                    w["attributes"] = json.loads(attrs)
                w["seq"] = self._seq
                if self.sign:
                    msg = record_signed_bytes(s.agent, s.session, s.task, self._seq, r.action, r.tool, r.resource, r.outcome, attrs)
                    w["sig"] = base64.b64encode(self.key.sign(msg)).decode()
                out.append(w)
            seq_end = self._seq
        # The body re-encodes attributes exactly as signed: the same dumps settings.
        return s, json.dumps({"entries": out}, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(), seq_end

    def _give_back(self, s: Session, seq_end: int, n: int) -> None:
        """Returns the sequence numbers of a request that was surely not
        appended, unless another request took numbers since: a gap must
        mean a dropped record."""
        with self._session_lock:
            if self._session is s and self._seq == seq_end:
                self._seq -= n

    def _retrying(self, method: str, path: str, send: Callable[[], bytes]) -> bytes:
        backoff = 0.1
        attempt = 0
        while True:
            try:
                return send()
            except HTTPError as e:
                if e.status < 500:
                    raise
                if attempt >= self.max_retries:
                    if e.status == 503:
                        raise PushbackError(e.method, e.path, e.status, e.server_message, e.retry_after) from e
                    raise
                wait = e.retry_after or backoff
            except NETWORK_ERRORS as e:
                if attempt >= self.max_retries:
                    raise UnreachableError(f"{method} {self._t.base}{path}: the log is unreachable after {attempt + 1} attempts: {e}") from e
                wait = backoff
            attempt += 1
            backoff = min(backoff * 2, 5.0)
            time.sleep(wait)

    # ---- appending ----

    def append(self, *records: RecordLike) -> list[Receipt]:
        """Appends records in one request, all or none, and returns their
        receipts once durable. Retries reuse the request's idempotency key."""
        recs = [_record(r) for r in records]
        if not recs:
            return []
        renewed = False
        while True:
            try:
                s, body, seq_end = self._encode(recs)
            except HTTPError as e:
                if e.status in (401, 403):  # the agent may not open a session (revoked, not approved)
                    raise SessionEndedError(e.method, e.path, e.status, e.server_message) from e
                raise
            ikey = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
            try:
                data = self._retrying("POST", "/v1/entries", lambda: self._t.request(
                    "POST", "/v1/entries", body, token=s.credential, headers={"Idempotency-Key": ikey}))
                return [Receipt(e["index"], e["leaf_hash"], e["time"]) for e in json.loads(data)["entries"]]
            except HTTPError as e:
                if 400 <= e.status < 500 and e.status != 401:
                    self._give_back(s, seq_end, len(recs))  # refused: nothing was written
                if e.status != 401:
                    raise
                # Expired, closed or revoked: open a new session once.
                with self._session_lock:
                    if self._session is s:
                        self._session = None
                if renewed:
                    raise SessionEndedError(e.method, e.path, e.status, e.server_message) from e
                renewed = True
                try:
                    self.open()
                except HTTPError as oe:
                    raise SessionEndedError(oe.method, oe.path, oe.status, oe.server_message) from oe

    def add(self, record: RecordLike) -> "Future[Receipt]":
        """Buffers one record for the background flusher and returns a Future
        of its receipt. Raises BufferFullError at once when ``max_buffer``
        records are already waiting."""
        rec = _record(record)
        fut: Future[Receipt] = Future()
        with self._cond:
            if self._closed:
                raise AgentlogError("the agent is closed")
            if self._waiting >= self.max_buffer:
                raise BufferFullError(f"{self._waiting} records are waiting for the log at {self._t.base} (max_buffer {self.max_buffer}): it is unreachable or slower than the agent")
            self._buf.append((rec, fut))
            self._waiting += 1
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._run, name="agentlog-flusher", daemon=True)
                self._flusher.start()
            if len(self._buf) >= self.batch_size or len(self._buf) == 1:
                self._cond.notify_all()
        return fut

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._buf and not self._closed:
                    self._cond.wait()
                if not self._buf:
                    return
                deadline = time.monotonic() + self.flush_interval
                while len(self._buf) < self.batch_size and not self._flush_now and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._buf[: self.batch_size]
                del self._buf[: self.batch_size]
            self._slots.acquire()
            self._pool.submit(self._send, batch)

    def _send(self, batch: list[tuple[Record, "Future[Receipt]"]]) -> None:
        try:
            rs = self.append(*[r for r, _ in batch])
            for (_, f), r in zip(batch, rs):
                f.set_result(r)
        except BaseException as e:  # every waiter sees the failure
            for _, f in batch:
                f.set_exception(e)
            with self._cond:
                self._errors.append(e)
        finally:
            self._slots.release()
            with self._cond:
                self._waiting -= len(batch)
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Waits until every record add() took is acknowledged or failed, and
        raises the first failure since the last flush."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_now += 1
            self._cond.notify_all()
            try:
                while self._waiting > 0:
                    left = None if end is None else end - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"{self._waiting} records still waiting for the log after {timeout} s")
                    self._cond.wait(left)
            finally:
                self._flush_now -= 1
            errs, self._errors = self._errors, []
        if errs:
            raise errs[0]

    def close(self) -> None:
        """Flushes, stops the flusher and closes the session."""
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._pool.shutdown(wait=True)
        s, self._session = self._session, None
        try:
            if s is not None:
                self._t.request("DELETE", "/v1/sessions/current", token=s.credential)
        finally:
            self._t.close()

    def __enter__(self) -> "Agent":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- asyncio ----

    async def aappend(self, *records: RecordLike) -> list[Receipt]:
        """append() for asyncio code (runs in a worker thread)."""
        return await asyncio.to_thread(self.append, *records)

    async def aadd(self, record: RecordLike) -> Receipt:
        """add() for asyncio code: waits for the receipt without blocking the loop."""
        return await asyncio.wrap_future(self.add(record))

    async def aflush(self) -> None:
        await asyncio.to_thread(self.flush)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> "Agent":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- tool calls ----

    def tool_call(self, tool: str, *, action: str = "tool.call", resource: str = "",
                  attributes: Mapping[str, Any] | None = None, wait: bool = True) -> "ToolCall":
        """A context manager (``with`` or ``async with``) recording one tool
        call with its outcome and latency when it ends."""
        return ToolCall(self, tool, action, resource, dict(attributes or {}), wait)

    def tool(self, tool: str, *, action: str = "tool.call", resource: str | Callable[..., str] = "",
             wait: bool = True) -> Callable[[F], F]:
        """A decorator recording every call of a function (sync or async) as
        a tool call. resource may be a function of the call's arguments."""
        return _tool_decorator(lambda: self, tool, action, resource, wait)


class ToolCall:
    """One tool call being recorded. Set ``outcome`` or add ``attributes``
    inside the block; an exception makes the outcome ``error: <Type>``.

    With ``wait`` (the default) the block ends only once the record is
    durable; otherwise it is buffered and a failure surfaces at the agent's
    next flush()."""

    def __init__(self, agent: Agent, tool: str, action: str, resource: str, attributes: dict[str, Any], wait: bool) -> None:
        self.agent, self.tool, self.action, self.resource = agent, tool, action, resource
        self.attributes = attributes
        self.outcome = ""
        self.wait = wait
        self.receipt: Receipt | None = None
        self._t0 = 0.0

    def _record(self, exc: BaseException | None) -> Record:
        latency = time.perf_counter() - self._t0
        outcome = self.outcome or ("ok" if exc is None else f"error: {type(exc).__name__}")
        attrs = {**self.attributes, "latency_ms": round(latency * 1000, 3)}
        return Record(self.action, self.tool, self.resource, outcome, attrs)

    def __enter__(self) -> "ToolCall":
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, et: object, exc: BaseException | None, tb: object) -> None:
        fut = self.agent.add(self._record(exc))
        if self.wait:
            self.receipt = fut.result()

    async def __aenter__(self) -> "ToolCall":
        self._t0 = time.perf_counter()
        return self

    async def __aexit__(self, et: object, exc: BaseException | None, tb: object) -> None:
        fut = self.agent.add(self._record(exc))
        if self.wait:
            self.receipt = await asyncio.wrap_future(fut)


def _tool_decorator(get: Callable[[], Agent], tool: str, action: str, resource: str | Callable[..., str], wait: bool) -> Callable[[F], F]:
    def res(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return resource(*args, **kwargs) if callable(resource) else resource

    def deco(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                async with get().tool_call(tool, action=action, resource=res(args, kwargs), wait=wait):
                    return await fn(*args, **kwargs)
            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with get().tool_call(tool, action=action, resource=res(args, kwargs), wait=wait):
                return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return deco


_default: Agent | None = None


def set_default_agent(agent: Agent | None) -> None:
    """Sets the agent that the module-level :func:`tool` records with."""
    global _default
    _default = agent


def _default_agent() -> Agent:
    if _default is None:
        raise AgentlogError("no default agent: call agentlog.set_default_agent(agent) first")
    return _default


def tool(tool: str, *, action: str = "tool.call", resource: str | Callable[..., str] = "", wait: bool = True) -> Callable[[F], F]:
    """``@agentlog.tool("crm.lookup")``: records every call of the decorated
    function (sync or async) with the default agent (set_default_agent),
    looked up at call time."""
    return _tool_decorator(_default_agent, tool, action, resource, wait)
