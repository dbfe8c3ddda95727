"""Typed errors. Every error from the server carries its sentence (the
JSON ``error`` of the answer) as ``server_message``."""

from __future__ import annotations


class AgentlogError(Exception):
    """Base class of the SDK's errors."""


class HTTPError(AgentlogError):
    """The server answered with a non-2xx status."""

    def __init__(self, method: str, path: str, status: int, server_message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{method} {path}: server answered {status}: {server_message}")
        self.method = method
        self.path = path
        self.status = status
        #: The server's sentence: the answer's JSON "error", or its body.
        self.server_message = server_message
        #: Seconds the server asked to wait (Retry-After), if any.
        self.retry_after = retry_after


class SessionEndedError(HTTPError):
    """The session credential was refused (expired, closed, revoked agent)
    and no new session could be opened."""


class PushbackError(HTTPError):
    """The server kept answering 503 (busy) until the retries ran out."""


class UnreachableError(AgentlogError):
    """The server could not be reached until the retries ran out."""


class BufferFullError(AgentlogError):
    """``max_buffer`` records are already waiting for the log (it is
    unreachable or slower than the agent). The record was not taken:
    nothing is dropped silently."""


class KeyFileError(AgentlogError):
    """The agent key file is not valid. ``reason`` is one of
    ``not-agent-key``, ``no-agent-id``, ``bad-seed``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class VerificationError(AgentlogError):
    """A verification failed. ``reason`` is one of the codes of
    testdata/vectors/README.md (``root-mismatch``, ``quorum``, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConfigError(AgentlogError):
    """An agent configuration is not valid. ``reason`` is one of
    ``invalid-json``, ``invalid-config``, ``too-large``
    (testdata/vectors/configs.json)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
