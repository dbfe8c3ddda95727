"""Agent key files and signed session-open requests (docs/identity.md)."""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import KeyFileError
from .verify import b64decode

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

#: Prefix of an agent key file: AGENTLOG-AGENT-KEY+<agent id>+<base64 seed>.
AGENT_KEY_PREFIX = "AGENTLOG-AGENT-KEY+"


@dataclass(frozen=True)
class AgentKey:
    """An agent's Ed25519 key, as read from its key file."""

    agent: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, msg: bytes) -> bytes:
        return self.private_key.sign(msg)


def parse_agent_key(text: str) -> AgentKey:
    """Parses the text of an agent key file (``agentlog agent register --key-out``)."""
    s = text.strip()
    if not s.startswith(AGENT_KEY_PREFIX):
        raise KeyFileError("not-agent-key", f"not an agentlog agent key (want {AGENT_KEY_PREFIX}<id>+<seed>)")
    agent, plus, seed_text = s[len(AGENT_KEY_PREFIX) :].partition("+")
    if not plus or not _ID.fullmatch(agent):
        raise KeyFileError("no-agent-id", "agent key file has no valid agent id")
    seed = b64decode(seed_text, canonical=True)
    if seed is None or len(seed) != 32:
        raise KeyFileError("bad-seed", "agent key file seed is not 32 bytes of base64")
    return AgentKey(agent, Ed25519PrivateKey.from_private_bytes(seed))


def load_agent_key(path: str | os.PathLike[str]) -> AgentKey:
    """Reads an agent key file. It must not be readable by others (mode 0600)."""
    st = os.stat(path)
    if os.name == "posix" and st.st_mode & 0o077:
        raise KeyFileError("bad-mode", f"agent key file {os.fspath(path)} is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it")
    with open(path, encoding="utf-8") as f:
        return parse_agent_key(f.read())


def session_signed_bytes(agent: str, task: str, ttl_seconds: int, time: str, nonce: str, config: str = "") -> bytes:
    """The six lines an agent signs to open a session, and a seventh,
    ``config <digest>``, when it declares its configuration."""
    b = f"agentlog session open v1\nagent {agent}\ntask {task}\nttl {ttl_seconds}\ntime {time}\nnonce {nonce}\n"
    if config:
        b += f"config {config}\n"
    return b.encode()


def rfc3339(t: datetime) -> str:
    """RFC 3339 UTC with microseconds, as the server accepts."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def session_request(key: AgentKey, task: str, ttl_seconds: int = 0, time: str | None = None, nonce: str | None = None,
                    config: str = "") -> tuple[bytes, dict[str, object]]:
    """Signs a session-open request: returns the signed bytes and the body of
    POST /v1/sessions. time and nonce default to now and 18 random bytes;
    config is the digest (``sha256:<hex>``) of the agent configuration the
    session runs under, for a log with change management (empty: none)."""
    time = time or rfc3339(datetime.now(timezone.utc))
    nonce = nonce or base64.urlsafe_b64encode(os.urandom(18)).decode().rstrip("=")
    msg = session_signed_bytes(key.agent, task, ttl_seconds, time, nonce, config)
    body: dict[str, object] = {"agent": key.agent, "task": task}
    if ttl_seconds:
        body["ttl_seconds"] = ttl_seconds
    body.update({"time": time, "nonce": nonce})
    if config:
        body["config"] = config
    body["sig"] = base64.b64encode(key.sign(msg)).decode()
    return msg, body
