"""Agent configurations and their digests (docs/changes.md), as the Go
client and the server compute them (package log/config).

A configuration is identified by ``sha256:`` and the hex SHA-256 of its
RFC 8785 canonical form (JSON Canonicalization Scheme,
https://www.rfc-editor.org/rfc/rfc8785): numbers as IEEE 754 doubles in
ECMAScript form, object names sorted by UTF-16 code units, only ``"``,
``\\`` and control characters escaped. The server canonicalizes with
github.com/go-json-experiment/json, whose one departure is kept here too: a
number beyond the largest double becomes the largest double. A prompt given
in a file as ``{"file": PATH}`` is replaced by ``{"sha256": HEX}`` of the
file's bytes (:func:`load_config`), so prompt bodies never leave the
machine. testdata/vectors/configs.json holds the shared vectors.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NoReturn, Union

from .errors import ConfigError

#: Largest configuration document, in bytes.
MAX_SIZE = 64 << 10

#: Prefix of every configuration digest.
DIGEST_PREFIX = "sha256:"

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _fail(reason: str, message: str) -> NoReturn:
    raise ConfigError(reason, message)


def valid_digest(s: str) -> bool:
    """Whether s is ``sha256:`` and 64 lowercase hex digits."""
    return isinstance(s, str) and s.startswith(DIGEST_PREFIX) and _HEX64.fullmatch(s[len(DIGEST_PREFIX):]) is not None


# ---- RFC 8785 ----


def _number(text: str) -> float:
    f = float(text)
    if math.isinf(f):  # as jsontext does: the largest double of that sign
        return math.copysign(sys.float_info.max, f)
    return f


def _no_constant(name: str) -> NoReturn:
    _fail("invalid-json", f"{name} is not JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            _fail("invalid-json", f"duplicate object member name {k!r}")
        out[k] = v
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_float=_number, parse_int=_number, parse_constant=_no_constant)


def _check_strings(v: Any) -> None:
    if isinstance(v, str):
        if any("\ud800" <= c <= "\udfff" for c in v):
            _fail("invalid-json", "a string holds a lone surrogate")
    elif isinstance(v, dict):
        for k, e in v.items():
            _check_strings(k)
            _check_strings(e)
    elif isinstance(v, list):
        for e in v:
            _check_strings(e)


def parse_json(text: str | bytes) -> Any:
    """Parses one JSON value strictly (RFC 8259 and I-JSON: valid UTF-8, no
    lone surrogates, no duplicate names; numbers as doubles). Raises
    :class:`ConfigError` with reason ``invalid-json``."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            _fail("invalid-json", "the JSON text is not valid UTF-8")
    try:
        v = _DECODER.decode(text)
    except json.JSONDecodeError as e:
        _fail("invalid-json", f"not JSON: {e}")
    except RecursionError:
        _fail("invalid-json", "the JSON text is nested too deeply")
    _check_strings(v)
    return v


def _es_number(f: float) -> str:
    """ECMAScript's Number.prototype.toString of a double (RFC 8785 3.2.2.3)."""
    if f == 0:
        return "0"
    sign = "-" if f < 0 else ""
    r = repr(abs(f))  # the shortest digits that round-trip, as ECMAScript's
    mant, _, exp = r.partition("e")
    whole, _, frac = mant.partition(".")
    digits = whole + frac
    n = len(whole) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        s = digits + "0" * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * -n + digits
    else:
        e = n - 1
        s = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-") + str(abs(e))
    return sign + s


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(s: str) -> str:
    out = ['"']
    for c in s:
        e = _ESCAPES.get(c)
        if e is not None:
            out.append(e)
        elif c < " ":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _serialize(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, (int, float)):
        f = float(v)
        if not math.isfinite(f):
            _fail("invalid-json", f"{v!r} is not a JSON number")
        out.append(_es_number(f))
    elif isinstance(v, Mapping):
        out.append("{")
        for i, k in enumerate(sorted(v, key=lambda k: k.encode("utf-16-be", "surrogatepass"))):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _serialize(v[k], out)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, e in enumerate(v):
            if i:
                out.append(",")
            _serialize(e, out)
        out.append("]")
    else:
        raise TypeError(f"{type(v).__name__} is not a JSON value")


def canonicalize(text: str | bytes) -> bytes:
    """The RFC 8785 canonical form of a JSON text, as the server computes it."""
    out: list[str] = []
    _serialize(parse_json(text), out)
    return "".join(out).encode("utf-8")


def digest_of(canonical: bytes) -> str:
    """``sha256:<hex>`` of canonical bytes."""
    return DIGEST_PREFIX + hashlib.sha256(canonical).hexdigest()


# ---- Agent configurations ----


@dataclass(frozen=True)
class ConfigDocument:
    """A checked agent configuration: the document as parsed, its RFC 8785
    form and its digest, the value a session declares."""

    config: dict[str, Any]
    canonical: bytes
    digest: str


_TOP = {"model", "prompts", "scope", "framework", "parameters"}


def _members(v: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(v, dict):
        _fail("invalid-config", f"{where} must be a JSON object")
    for k in v:
        if k not in allowed:
            _fail("invalid-config", f"unknown member {k!r} in {where}")
    return v


def _opt_str(o: dict[str, Any], k: str, where: str) -> str:
    v = o.get(k)
    if v is None:
        return ""
    if not isinstance(v, str):
        _fail("invalid-config", f'{where} "{k}" must be a string')
    return v


def _validate(c: Any) -> None:
    """The checks of log/config's Parse."""
    c = _members(c, "the configuration", _TOP)
    model = c.get("model")
    if model is not None:
        _members(model, '"model"', {"provider", "name", "version"})
        for k in ("provider", "version"):
            _opt_str(model, k, '"model"')
    if model is None or not _opt_str(model, "name", '"model"').strip():
        _fail("invalid-config", '"model" must have a "name"')
    prompts = c.get("prompts")
    if prompts is not None:
        _members(prompts, '"prompts"', set(prompts) if isinstance(prompts, dict) else set())
        for name, p in prompts.items():
            if p is not None:
                _members(p, f"prompt {name!r}", {"sha256", "text", "file"})
            p = p or {}
            sha, text, file = (_opt_str(p, k, f"prompt {name!r}") for k in ("sha256", "text", "file"))
            if name == "":
                _fail("invalid-config", "a prompt has an empty name")
            if file:
                _fail("invalid-config", f'prompt {name!r} is given by file; send its "sha256" (load_config reads files)')
            if (sha == "") == (text == ""):
                _fail("invalid-config", f'prompt {name!r} needs exactly one of "text" or "sha256"')
            if sha and not _HEX64.fullmatch(sha):
                _fail("invalid-config", f'prompt {name!r}: "sha256" must be 64 lowercase hex digits')
    for k, what in (("scope", "the declared scope"), ("parameters", "free parameters")):
        if k in c and not isinstance(c[k], dict):
            _fail("invalid-config", f'"{k}" must be a JSON object ({what})')
    fw = c.get("framework")
    if fw is not None:
        _members(fw, '"framework"', {"name", "version"})
        _opt_str(fw, "version", '"framework"')
        if not _opt_str(fw, "name", '"framework"').strip():
            _fail("invalid-config", '"framework" must have a "name"')


def _size(text: str | bytes) -> None:
    n = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
    if n > MAX_SIZE:
        _fail("too-large", f"the configuration has {n} bytes, at most {MAX_SIZE}")


def _document(c: Any) -> ConfigDocument:
    _validate(c)
    out: list[str] = []
    _serialize(c, out)
    canon = "".join(out).encode("utf-8")
    return ConfigDocument(c, canon, digest_of(canon))


def parse_config(doc: str | bytes | Mapping[str, Any]) -> ConfigDocument:
    """Checks a configuration document (its JSON text, or the document as a
    mapping) as the server does and returns it with its canonical form and
    digest. A prompt given by file is refused: :func:`load_config` reads
    files. Raises :class:`ConfigError` (reason ``invalid-json``,
    ``invalid-config`` or ``too-large``)."""
    if isinstance(doc, Mapping):
        doc = json.dumps(doc, ensure_ascii=False, allow_nan=False)
    _size(doc)
    return _document(parse_json(doc))


def load_config(path: str | os.PathLike[str]) -> ConfigDocument:
    """Reads a configuration file, replaces each prompt given as
    ``{"file": PATH}`` (relative to the file's directory) with
    ``{"sha256": HEX}`` of that file's bytes, and checks the result, as the
    Go client's LoadConfig and ``agentlog agent register --config`` do."""
    p = Path(path)
    b = p.read_bytes()
    try:
        _size(b)
        c = parse_json(b)
        prompts = c.get("prompts") if isinstance(c, dict) else None
        if isinstance(prompts, dict):
            for name, pr in prompts.items():
                if not isinstance(pr, dict) or "file" not in pr:
                    continue
                f = pr["file"]
                if not isinstance(f, str) or f == "" or len(pr) != 1:
                    _fail("invalid-config", f'prompt {name!r}: "file" must be a path, alone')
                body = (p.parent / f).read_bytes()
                prompts[name] = {"sha256": hashlib.sha256(body).hexdigest()}
        return _document(c)
    except ConfigError as e:
        raise ConfigError(e.reason, f"{p}: {e}") from None


ConfigLike = Union[str, ConfigDocument, Mapping[str, Any], "os.PathLike[str]"]


def config_digest(config: ConfigLike) -> str:
    """The digest a session declares for config: a digest string (checked),
    a :class:`ConfigDocument`, a configuration document as a mapping, or the
    path of a configuration file (a :class:`pathlib.Path`; a str is taken
    as a digest). "" declares none."""
    if isinstance(config, ConfigDocument):
        return config.digest
    if isinstance(config, str):
        if config and not valid_digest(config):
            raise ValueError(f"the configuration digest {config!r} must be sha256: and 64 lowercase hex digits (give a pathlib.Path to load a file)")
        return config
    if isinstance(config, Mapping):
        return parse_config(config).digest
    if isinstance(config, os.PathLike):
        return load_config(config).digest
    raise TypeError(f"config must be a digest, a ConfigDocument, a mapping or a path, not {type(config).__name__}")
