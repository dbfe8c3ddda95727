"""The HTTP layer: keep-alive connections per thread, typed errors."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from typing import Mapping

from .errors import HTTPError

#: Network failures a request may be retried after.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)

MAX_ANSWER = 64 << 20


class Transport:
    """Requests to one server, reusing a connection per thread."""

    def __init__(self, server: str, timeout: float = 30.0) -> None:
        u = urllib.parse.urlsplit(server)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"server URL {server!r} is not an http(s) URL")
        self.base = server.rstrip("/")
        self._scheme = u.scheme
        self._netloc = u.netloc
        self._prefix = u.path.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[http.client.HTTPConnection] = []

    def _new(self, timeout: float | None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._netloc, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, token: str | None = None,
                headers: Mapping[str, str] | None = None) -> bytes:
        """Sends a request and returns the 2xx answer's body; raises HTTPError
        for another status and a NETWORK_ERRORS exception when the server
        cannot be reached."""
        h = {"User-Agent": "agentlog-python/0.1.0"}
        if token:
            h["Authorization"] = "Bearer " + token
        if body is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._new(self.timeout)
            with self._lock:
                self._conns.append(conn)
        try:
            conn.request(method, self._prefix + path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read(MAX_ANSWER)
        except NETWORK_ERRORS:
            conn.close()
            self._local.conn = None
            raise
        if r.will_close:
            conn.close()
            self._local.conn = None
        if r.status // 100 != 2:
            raise http_error(method, path, r.status, data, r.getheader("Retry-After"))
        return data

    def close(self) -> None:
        """Closes the kept-alive connections of every thread."""
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            c.close()

    def stream(self, method: str, path: str, token: str | None = None) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Sends a request on a fresh connection with no read timeout and
        returns it with the open response (the caller reads, then closes
        both)."""
        conn = self._new(None)
        h = {"User-Agent": "agentlog-python/0.1.0"}
        if token:
            h["Authorization"] = "Bearer " + token
        conn.request(method, self._prefix + path, headers=h)
        r = conn.getresponse()
        if r.status // 100 != 2:
            data = r.read(1 << 20)
            conn.close()
            raise http_error(method, path, r.status, data, r.getheader("Retry-After"))
        return conn, r


def http_error(method: str, path: str, status: int, body: bytes, retry_after: str | None, cls: type[HTTPError] = HTTPError) -> HTTPError:
    text = body.decode("utf-8", "replace").strip()
    msg = text
    try:
        j = json.loads(text)
        if isinstance(j, dict) and isinstance(j.get("error"), str) and j["error"]:
            msg = j["error"]
    except ValueError:
        pass
    ra: float | None = None
    if retry_after and retry_after.strip().isdigit():
        ra = float(retry_after)
    return cls(method, path, status, msg, ra)
