"""agentlog: the Python SDK of agentlog, a verifiable audit log for AI agents.

Agents append signed, numbered records under task sessions (:class:`Agent`,
with :func:`tool` and :meth:`Agent.tool_call` for tool calls); auditors read
and verify checkpoints, proofs and queries (:class:`Auditor` and the
functions of :mod:`agentlog.verify`). The formats are those of
docs/identity.md and the C2SP specs; the shared vectors of testdata/vectors
keep this SDK byte-compatible with the Go and TypeScript clients.
"""

from .agent import Agent, Receipt, Record, Session, ToolCall, parse_time, set_default_agent, tool
from .config import ConfigDocument, canonicalize, config_digest, load_config, parse_config
from .auditor import Auditor, QueryMatch, QueryStream
from .errors import (
    AgentlogError,
    BufferFullError,
    ConfigError,
    HTTPError,
    KeyFileError,
    PushbackError,
    SessionEndedError,
    UnreachableError,
    VerificationError,
)
from .keys import AgentKey, load_agent_key, parse_agent_key, session_request, session_signed_bytes
from .verify import (
    VerifiedCheckpoint,
    leaf_hash,
    parse_policy,
    record_signed_bytes,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
    verify_leaf_signature,
    verify_tlog_proof,
)

__version__ = "0.1.0"

__all__ = [
    "Agent", "AgentKey", "AgentlogError", "Auditor", "BufferFullError", "ConfigDocument", "ConfigError",
    "HTTPError", "KeyFileError", "canonicalize", "config_digest", "load_config", "parse_config",
    "PushbackError", "QueryMatch", "QueryStream", "Receipt", "Record", "Session", "SessionEndedError",
    "ToolCall", "UnreachableError", "VerificationError", "VerifiedCheckpoint", "leaf_hash", "load_agent_key",
    "parse_agent_key", "parse_policy", "parse_time", "record_signed_bytes", "session_request",
    "session_signed_bytes", "set_default_agent", "tool", "verify_checkpoint", "verify_consistency",
    "verify_inclusion", "verify_leaf_signature", "verify_tlog_proof", "__version__",
]
