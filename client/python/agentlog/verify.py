"""Verification of what an agentlog server says, trusting nothing it sends.

RFC 6962 leaf hashes and inclusion and consistency proofs (RFC 9162,
section 2.1), C2SP signed notes and checkpoints (c2sp.org/signed-note,
c2sp.org/tlog-checkpoint) with the log's timestamp signature and witness
cosignatures (c2sp.org/tlog-cosignature), witness policies
(c2sp.org/tlog-policy), offline proofs (c2sp.org/tlog-proof) and agent record
signatures (docs/identity.md).

Every failure raises :class:`VerificationError` whose ``reason`` is one of the
codes of testdata/vectors/README.md; the shared vectors pin the behaviour to
the Go and TypeScript clients'.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
from dataclasses import dataclass, field
from typing import NoReturn, Sequence, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from .errors import VerificationError

Bytes = Union[bytes, bytearray]


def _fail(reason: str, message: str) -> NoReturn:
    raise VerificationError(reason, message)


_B64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def b64decode(s: str, canonical: bool = False) -> bytes | None:
    """Decodes standard padded base64, or returns None. With canonical, an
    encoding whose unused bits are set is refused too (Go's Strict)."""
    if not _B64.match(s):
        return None
    try:
        b = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    if canonical and base64.b64encode(b).decode() != s:
        return None
    return b


def b64encode(b: Bytes) -> str:
    return base64.b64encode(bytes(b)).decode()


def ed25519_verify(public_key: Bytes, msg: Bytes, sig: Bytes) -> bool:
    if len(public_key) != 32 or len(sig) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_key)).verify(bytes(sig), bytes(msg))
        return True
    except (InvalidSignature, ValueError):
        return False


# ---- RFC 6962 hashing and proofs ----


def leaf_hash(leaf: Bytes | str) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || leaf)."""
    if isinstance(leaf, str):
        leaf = leaf.encode()
    return hashlib.sha256(b"\x00" + bytes(leaf)).digest()


def _node(l: bytes, r: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + l + r).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def _check_u64(n: int, what: str) -> None:
    if not isinstance(n, int) or n < 0 or n >= 1 << 64:
        _fail("malformed", f"{what} {n!r} is not a 64-bit unsigned integer")


def _check_hashes(hs: Sequence[Bytes], what: str) -> None:
    for h in hs:
        if len(h) != 32:
            _fail("malformed", f"{what} holds a hash of {len(h)} bytes, not 32")


def _decomp(index: int, size: int) -> tuple[int, int]:
    inner = (index ^ (size - 1)).bit_length()
    return inner, bin(index >> inner).count("1")


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = _node(seed, h) if (index >> i) & 1 == 0 else _node(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = _node(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = _node(h, seed)
    return seed


def root_from_inclusion_proof(index: int, size: int, leaf_hash: Bytes, proof: Sequence[Bytes]) -> bytes:
    """The root an inclusion proof leads to (raises if it has the wrong size)."""
    _check_u64(index, "index")
    _check_u64(size, "size")
    if index >= size:
        _fail("index-out-of-range", f"index {index} is not in a tree of size {size}")
    _check_hashes([leaf_hash, *proof], "the inclusion proof")
    inner, border = _decomp(index, size)
    if len(proof) != inner + border:
        _fail("wrong-proof-size", f"the inclusion proof of index {index} in a tree of size {size} has {len(proof)} hashes, want {inner + border}")
    p = [bytes(h) for h in proof]
    r = _chain_inner(bytes(leaf_hash), p[:inner], index)
    return _chain_border_right(r, p[inner:])


def verify_inclusion(index: int, size: int, leaf_hash: Bytes, proof: Sequence[Bytes], root: Bytes) -> None:
    """Verifies an RFC 6962 inclusion proof of the leaf with leaf_hash at index under root."""
    got = root_from_inclusion_proof(index, size, leaf_hash, proof)
    if got != bytes(root):
        _fail("root-mismatch", f"the inclusion proof of index {index} leads to root {b64encode(got)}, not {b64encode(root)}")


def verify_consistency(old: int, size: int, proof: Sequence[Bytes], old_root: Bytes, root: Bytes) -> None:
    """Verifies an RFC 6962 consistency proof between trees of sizes old and size."""
    _check_u64(old, "old size")
    _check_u64(size, "size")
    _check_hashes([old_root, root, *proof], "the consistency proof")
    old_root, root = bytes(old_root), bytes(root)
    p = [bytes(h) for h in proof]
    if size < old:
        _fail("size-order", f"a tree of size {size} cannot extend one of size {old}")
    if old == size:
        if p:
            _fail("wrong-proof-size", "the consistency proof between equal sizes must be empty")
        if old_root != root:
            _fail("root-mismatch", f"two different roots for the tree of size {old}")
        return
    if old == 0:
        if p:
            _fail("wrong-proof-size", "the consistency proof from an empty tree must be empty")
        return
    if not p:
        _fail("wrong-proof-size", "the consistency proof is empty")
    inner, border = _decomp(old - 1, size)
    shift = (old & -old).bit_length() - 1
    inner -= shift
    seed, start = p[0], 1
    if old == 1 << shift:
        seed, start = old_root, 0
    if len(p) != start + inner + border:
        _fail("wrong-proof-size", f"the consistency proof from {old} to {size} has {len(p)} hashes, want {start + inner + border}")
    p = p[start:]
    mask = (old - 1) >> shift
    h1 = _chain_border_right(_chain_inner_right(seed, p[:inner], mask), p[inner:])
    if h1 != old_root:
        _fail("root-mismatch", f"the consistency proof does not lead to the old root of size {old}")
    h2 = _chain_border_right(_chain_inner(seed, p[:inner], mask), p[inner:])
    if h2 != root:
        _fail("root-mismatch", f"the consistency proof does not lead to the root of size {size}")


# ---- Signed notes ----

ALG_ED25519 = 0x01
ALG_ECDSA_SHA256 = 0x02
ALG_COSIGNATURE_V1 = 0x04


@dataclass(frozen=True)
class VerifierKey:
    """A verifier key ``<name>+<8 hex key ID>+<base64(type || key)>``.
    ``public_key`` is the raw Ed25519 key, or for ECDSA the DER SPKI."""

    vkey: str
    name: str
    key_id: int
    type: int
    public_key: bytes
    ecdsa: ec.EllipticCurvePublicKey | None = field(default=None, compare=False, repr=False)


def _valid_name(name: str) -> bool:
    return name != "" and "+" not in name and not any(c.isspace() for c in name)


def _ed25519_key_id(name: str, typ: int, pub: bytes) -> int:
    return struct.unpack(">I", hashlib.sha256(name.encode() + b"\n" + bytes([typ]) + pub).digest()[:4])[0]


def parse_verifier_key(vkey: str) -> VerifierKey:
    """Parses a verifier key of a type the Go verifier accepts for witnesses
    and logs (transparency-dev/formats/note.NewVerifier) and this SDK
    verifies: Ed25519 (0x01), ECDSA with SHA-256 (0x02: DER SPKI, key ID
    from SHA-256 of the DER) and Ed25519 cosignature v1 (0x04). Other types
    (ML-DSA-44 cosignatures, 0x06, among them) fail with reason
    ``unsupported-key``; a malformed key, or a key ID that is not the key's,
    with ``bad-key``."""
    s = vkey.strip()
    parts = s.split("+", 2)
    if len(parts) != 3:
        _fail("bad-key", f"verifier key {s!r} is not <name>+<key id>+<base64 key>")
    name, id_hex, b64 = parts
    key = b64decode(b64)
    if not _valid_name(name) or not re.fullmatch(r"[0-9a-f]{8}", id_hex) or key is None or len(key) < 2:
        _fail("bad-key", f"verifier key {s!r} is malformed")
    kid = int(id_hex, 16)
    typ, pub = key[0], key[1:]
    if typ in (ALG_ED25519, ALG_COSIGNATURE_V1):
        if len(pub) != 32:
            _fail("bad-key", f"verifier key {s!r}: an Ed25519 key has 32 bytes, not {len(pub)}")
        if _ed25519_key_id(name, typ, pub) != kid:
            _fail("bad-key", f"verifier key {s!r} has the wrong key ID")
        return VerifierKey(s, name, kid, typ, pub)
    if typ == ALG_ECDSA_SHA256:
        if struct.unpack(">I", hashlib.sha256(pub).digest()[:4])[0] != kid:
            _fail("bad-key", f"verifier key {s!r} has the wrong key ID")
        try:
            k = load_der_public_key(pub)
        except (ValueError, TypeError):
            _fail("bad-key", f"verifier key {s!r} is not a DER SPKI public key")
        if not isinstance(k, ec.EllipticCurvePublicKey):
            _fail("bad-key", f"verifier key {s!r} is not an ECDSA key")
        return VerifierKey(s, name, kid, typ, pub, k)
    _fail("unsupported-key", f"verifier key {s!r} has type 0x{typ:02x}; this SDK verifies Ed25519 (0x01), ECDSA with SHA-256 (0x02) and Ed25519 cosignature v1 (0x04) keys")


def _as_cosignature_key(k: VerifierKey) -> VerifierKey:
    """The timestamp key as the Go client takes it
    (NewVerifierForCosignatureV1): an Ed25519 key given in its 0x01 form is
    the cosignature v1 key (0x04) of the same public key."""
    if k.type == ALG_COSIGNATURE_V1:
        return k
    if k.type == ALG_ED25519:
        return VerifierKey(k.vkey, k.name, _ed25519_key_id(k.name, ALG_COSIGNATURE_V1, k.public_key), ALG_COSIGNATURE_V1, k.public_key)
    _fail("unsupported-key", f"the timestamp key {k.vkey!r} is not an Ed25519 cosignature v1 key")


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    sig: bytes  # without the key ID


@dataclass(frozen=True)
class Note:
    text: str
    sigs: list[NoteSignature]


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


def parse_note(raw: str | Bytes) -> Note:
    """Splits a signed note the way golang.org/x/mod's note.Open does."""
    if not isinstance(raw, str):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            _fail("malformed", "the note is not valid UTF-8")
    if _CONTROL.search(raw):
        _fail("malformed", "the note holds control characters")
    split = raw.rfind("\n\n")
    if split < 0:
        _fail("malformed", "the note has no blank line before its signatures")
    text, block = raw[: split + 1], raw[split + 2 :]
    if block == "" or not block.endswith("\n"):
        _fail("malformed", "the note's signature block is empty or does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > 100:
        _fail("malformed", f"the note has {len(lines)} signatures, more than 100")
    sigs = []
    for line in lines:
        if not line.startswith("\u2014 "):
            _fail("malformed", f"signature line {line!r} does not start with an em dash")
        name, _, b64 = line[2:].partition(" ")
        b = b64decode(b64)
        if not _valid_name(name) or b64 == "" or b is None or len(b) < 5:
            _fail("malformed", f"signature line {line!r} is malformed")
        sigs.append(NoteSignature(name, struct.unpack(">I", b[:4])[0], b[4:]))
    return Note(text, sigs)


def _check_sig(key: VerifierKey, text: str, sig: bytes) -> tuple[bool, int | None]:
    if key.type == ALG_ED25519:
        return ed25519_verify(key.public_key, text.encode(), sig), None
    if key.type == ALG_ECDSA_SHA256:
        assert key.ecdsa is not None
        try:
            key.ecdsa.verify(sig, text.encode(), ec.ECDSA(hashes.SHA256()))
            return True, None
        except (InvalidSignature, ValueError):
            return False, None
    if len(sig) != 72:
        return False, None
    t = struct.unpack(">Q", sig[:8])[0]
    msg = f"cosignature/v1\ntime {t}\n{text}".encode()
    return ed25519_verify(key.public_key, msg, sig[8:]), t


# ---- Witness policies ----


@dataclass(eq=False)
class PolicyWitness:
    name: str
    key: VerifierKey
    url: str | None = None


@dataclass(eq=False)
class PolicyGroup:
    name: str
    k: int
    members: list[Union["PolicyWitness", "PolicyGroup"]]


@dataclass
class Policy:
    """A parsed c2sp.org/tlog-policy. ``quorum`` None is ``quorum none``."""

    logs: list[tuple[VerifierKey, str | None]]
    witnesses: list[PolicyWitness]
    quorum: PolicyGroup | None


def parse_policy(text: str) -> Policy:
    """Parses a c2sp.org/tlog-policy file (log, witness, group, quorum lines)."""
    if len(text) > 1 << 20:
        _fail("malformed", "the policy is larger than 1 MiB")
    logs: list[tuple[VerifierKey, str | None]] = []
    witnesses: list[PolicyWitness] = []
    names: dict[str, PolicyWitness | PolicyGroup] = {}
    keys: set[bytes] = set()
    quorum: PolicyGroup | None = None
    quorum_seen = False
    for i, line in enumerate(text.split("\n"), 1):
        f = [x for x in re.split(r"[ \t]+", line) if x]

        def bad(msg: str) -> NoReturn:
            _fail("malformed", f"policy line {i}: {msg}")

        if not f or f[0].startswith("#"):
            continue

        def new_name(n: str) -> None:
            if n == "none":
                bad('"none" is reserved')
            if n in names:
                bad(f"{n!r} is already defined")

        def add_key(vkey: str) -> VerifierKey:
            try:
                k = parse_verifier_key(vkey)
            except VerificationError as e:
                _fail(e.reason, f"policy line {i}: {e}")
            if k.public_key in keys:
                bad("a key appears twice")
            keys.add(k.public_key)
            return k

        if f[0] == "log":
            if not 2 <= len(f) <= 3:
                bad('want "log <vkey> [<url>]"')
            logs.append((add_key(f[1]), f[2] if len(f) == 3 else None))
        elif f[0] == "witness":
            if not 3 <= len(f) <= 4:
                bad('want "witness <name> <vkey> [<url>]"')
            new_name(f[1])
            w = PolicyWitness(f[1], add_key(f[2]), f[3] if len(f) == 4 else None)
            witnesses.append(w)
            names[w.name] = w
        elif f[0] == "group":
            if len(f) < 4:
                bad('want "group <name> all|any|<k> <name>..."')
            new_name(f[1])
            members: list[PolicyWitness | PolicyGroup] = []
            seen: set[str] = set()
            for m in f[3:]:
                if m in seen:
                    bad(f"group {f[1]} lists {m} twice")
                seen.add(m)
                if m not in names:
                    bad(f"group {f[1]} names {m!r}, which no earlier line defines")
                members.append(names[m])
            if f[2] == "all":
                k = len(members)
            elif f[2] == "any":
                k = 1
            elif re.fullmatch(r"[1-9][0-9]*", f[2]) and int(f[2]) <= len(members):
                k = int(f[2])
            else:
                bad(f"group {f[1]} threshold {f[2]}: want all, any or 1 to {len(members)}")
            names[f[1]] = PolicyGroup(f[1], k, members)
        elif f[0] == "quorum":
            if len(f) != 2:
                bad('want "quorum <name>|none"')
            if quorum_seen:
                bad("a second quorum line")
            quorum_seen = True
            d = names.get(f[1])
            if isinstance(d, PolicyWitness):
                quorum = PolicyGroup(d.name, 1, [d])
            elif isinstance(d, PolicyGroup):
                quorum = d
            elif f[1] != "none":
                bad(f"quorum {f[1]!r} names nothing defined on an earlier line")
        else:
            bad(f"unknown keyword {f[0]!r}")
    if not quorum_seen:
        _fail("malformed", 'policy: no quorum line (write "quorum none" to need no witness)')
    return Policy(logs, witnesses, quorum)


def _satisfied(g: PolicyGroup, cosigned: set[int]) -> bool:
    n = 0
    for m in g.members:
        if (id(m) in cosigned) if isinstance(m, PolicyWitness) else _satisfied(m, cosigned):
            n += 1
    return n >= g.k


# ---- Checkpoints ----


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose signatures verified."""

    origin: str
    size: int
    root: bytes
    #: POSIX seconds of the log's timestamp signature (when a time key was given).
    time: int | None
    #: The policy names of the witnesses whose cosignature verified.
    cosigners: list[str] = field(default_factory=list)
    text: str = ""
    raw: str = ""


KeyLike = Union[str, VerifierKey]


def _key(k: KeyLike) -> VerifierKey:
    return parse_verifier_key(k) if isinstance(k, str) else k


def verify_checkpoint(
    raw: str | Bytes,
    log_key: KeyLike | None = None,
    time_key: KeyLike | None = None,
    policy: str | Policy | None = None,
) -> VerifiedCheckpoint:
    """Verifies a signed checkpoint as the Go client does (checkpoint.Open and
    witness.Policy.Verify): a valid signature by the log key (or, with only a
    policy, the policy's log of the checkpoint's origin), the body exactly
    origin, size and root in canonical form, the origin equal to the log
    key's name, the timestamp signature if a time key is given, and the
    policy's quorum. Signatures by other keys are ignored, and so are
    witness cosignatures that do not verify."""
    if not isinstance(raw, str):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            _fail("malformed", "the checkpoint is not valid UTF-8")
    if len(raw) > 1 << 20:
        _fail("malformed", "the checkpoint is larger than 1 MiB")
    pol = parse_policy(policy) if isinstance(policy, str) else policy
    n = parse_note(raw)
    origin = n.text[: n.text.find("\n")]
    lk = _key(log_key) if log_key is not None else None
    if pol is not None:
        match = [k for k, _ in pol.logs if (k.name == lk.name and k.public_key == lk.public_key if lk else k.name == origin)]
        if not match:
            _fail("no-log-signature", f"the log key {lk.name} is not in the policy" if lk else f"the policy has no log of origin {origin}")
        lk = match[0]
    if lk is None:
        raise TypeError("verify_checkpoint needs a log key or a policy")
    tk = _as_cosignature_key(_key(time_key)) if time_key is not None else None
    if tk and tk.name == lk.name and tk.key_id == lk.key_id:
        raise ValueError("the timestamp key must differ from the log key")
    known = [lk, tk] if tk else [lk]
    log_signed = False
    t: int | None = None
    seen: set[tuple[str, int]] = set()
    others: list[NoteSignature] = []
    for s in n.sigs:
        k = next((k for k in known if k.name == s.name and k.key_id == s.key_id), None)
        if k is None:
            others.append(s)
            continue
        if (s.name, s.key_id) in seen:
            continue
        seen.add((s.name, s.key_id))
        ok, st = _check_sig(k, n.text, s.sig)
        if not ok:
            _fail("bad-signature", f"the checkpoint's signature by {s.name} does not verify")
        if k is lk:
            log_signed = True
        else:
            t = st
    if not log_signed:
        _fail("no-log-signature", f"the checkpoint is not signed by the log key {lk.name}")
    lines = n.text.split("\n")
    if len(lines) < 4:
        _fail("malformed", "the checkpoint body is not origin, size and root")
    if len(lines) > 4 or lines[3] != "":
        _fail("extension-lines", "the checkpoint has extension lines, which agentlog never signs")
    o, size_text, root_text = lines[0], lines[1], lines[2]
    if o == "":
        _fail("malformed", "the checkpoint origin is empty")
    if not re.fullmatch(r"[0-9]+", size_text) or int(size_text) >= 1 << 64:
        _fail("malformed", f"the checkpoint size {size_text!r} is not a decimal number")
    root = b64decode(root_text)
    if root is None:
        _fail("malformed", "the checkpoint root is not base64")
    if len(root) != 32:
        _fail("bad-root", f"the checkpoint root hash has {len(root)} bytes, not 32")
    size = int(size_text)
    if str(size) != size_text or b64encode(root) != root_text:
        _fail("non-canonical", "the checkpoint body is not in canonical form (leading zeros in the size, or non-canonical base64)")
    if o != lk.name:
        _fail("origin-mismatch", f"the checkpoint origin {o!r} differs from the log key name {lk.name!r}")
    if tk and t is None:
        _fail("no-timestamp", f"the checkpoint has no timestamp signature by {tk.name}")
    cosigned: list[PolicyWitness] = []
    if pol is not None:
        for s in others:
            for w in pol.witnesses:
                if w in cosigned or w.key.name != s.name or w.key.key_id != s.key_id:
                    continue
                if _check_sig(w.key, n.text, s.sig)[0]:
                    cosigned.append(w)
        if pol.quorum is not None and not _satisfied(pol.quorum, {id(w) for w in cosigned}):
            _fail("quorum", f"the witness quorum is not met: checkpoint {o} size {size} has valid cosignatures from {len(cosigned)} witnesses of the policy")
    return VerifiedCheckpoint(o, size, root, t, sorted(w.name for w in cosigned), n.text, raw)


# ---- tlog-proof ----


@dataclass(frozen=True)
class TLogProof:
    index: int
    hashes: list[bytes]
    checkpoint: str


def parse_tlog_proof(file: str) -> TLogProof:
    """Parses a c2sp.org/tlog-proof@v1 file in the canonical form agentlog writes."""
    if len(file) > (1 << 20) + 8192:
        _fail("malformed", "the proof file is too large")
    if "\r" in file:
        _fail("malformed", "the proof file has carriage returns")
    split = file.find("\n\n")
    if split < 0:
        _fail("malformed", "the proof file has no blank line before its checkpoint")
    head, checkpoint = file[:split].split("\n"), file[split + 2 :]
    if head[0] != "c2sp.org/tlog-proof@v1":
        _fail("malformed", "the proof file does not start with c2sp.org/tlog-proof@v1")
    if len(head) > 1 and head[1].startswith("extra "):
        _fail("extra-data", "the proof file has an extra line, which agentlog never writes")
    m = re.fullmatch(r"index ([0-9]+)", head[1] if len(head) > 1 else "")
    if not m:
        _fail("malformed", "the proof file has no index line")
    index = int(m.group(1))
    if index >= 1 << 64:
        _fail("malformed", "the proof index is not a 64-bit number")
    canonical = str(index) == m.group(1)
    hashes = []
    for line in head[2:]:
        h = b64decode(line)
        if h is None or len(h) != 32:
            _fail("malformed", f"proof line {line!r} is not a base64 SHA-256 hash")
        canonical = canonical and b64encode(h) == line
        hashes.append(h)
    if len(hashes) > 64:
        _fail("malformed", f"the proof has {len(hashes)} hashes; a tree of 2^64 leaves needs at most 64")
    if checkpoint == "":
        _fail("malformed", "the proof file holds no checkpoint")
    if not canonical:
        _fail("non-canonical", "the proof file is not in canonical form (leading zeros or non-canonical base64)")
    return TLogProof(index, hashes, checkpoint)


def verify_tlog_proof(
    file: str,
    entry: str | Bytes,
    log_key: KeyLike | None = None,
    time_key: KeyLike | None = None,
    policy: str | Policy | None = None,
    index: int | None = None,
) -> VerifiedCheckpoint:
    """Verifies a c2sp.org/tlog-proof@v1 file for entry (the leaf): its form,
    the index (if given), the checkpoint, then the inclusion proof."""
    p = parse_tlog_proof(file)
    if index is not None and index != p.index:
        _fail("index-mismatch", f"the proof is of entry {p.index}, not {index}")
    cp = verify_checkpoint(p.checkpoint, log_key=log_key, time_key=time_key, policy=policy)
    verify_inclusion(p.index, cp.size, leaf_hash(entry), p.hashes, cp.root)
    return cp


# ---- Agent record signatures ----


def record_signed_bytes(
    agent: str,
    session: str,
    task: str,
    seq: int,
    action: str,
    tool: str = "",
    resource: str = "",
    outcome: str = "",
    attributes: str = "",
) -> bytes:
    """The ten lines an agent signs for a record (docs/identity.md);
    attributes is the record's compact JSON text (or empty)."""
    return (
        "agentlog record v1\n"
        f"agent {agent}\nsession {session}\ntask {task}\nseq {seq}\n"
        f"action {action}\ntool {tool}\nresource {resource}\noutcome {outcome}\nattributes {attributes}\n"
    ).encode()


_WS = " \t\n\r"


def raw_members(text: str) -> dict[str, str] | None:
    """Splits a JSON object's text into its members' raw value texts, keeping
    their bytes (attributes are signed as the leaf holds them). None if text
    is not a JSON object."""
    try:
        v = json.loads(text)
    except ValueError:
        return None
    if not isinstance(v, dict):
        return None
    out: dict[str, str] = {}
    i = 0
    n = len(text)

    def ws() -> None:
        nonlocal i
        while i < n and text[i] in _WS:
            i += 1

    def string() -> str:
        nonlocal i
        start = i
        i += 1
        while text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        i += 1
        return text[start:i]

    def value() -> str:
        nonlocal i
        start = i
        depth = 0
        while True:
            c = text[i]
            if c == '"':
                string()
                if depth == 0:
                    break
                continue
            if c in "{[":
                depth += 1
            elif c in "}]":
                if depth == 0:
                    break
                depth -= 1
                if depth == 0:
                    i += 1
                    break
            elif depth == 0 and (c == "," or c in _WS):
                break
            i += 1
        return text[start:i]

    ws()
    i += 1
    while True:
        ws()
        if text[i] == "}":
            break
        k = json.loads(string())
        ws()
        i += 1
        ws()
        out[k] = value()
        ws()
        if text[i] == ",":
            i += 1
    return out


def verify_leaf_signature(leaf: str | Bytes, public_key: Bytes) -> None:
    """Verifies the agent signature a leaf carries (``sig``) with the agent's
    Ed25519 public key."""
    if not isinstance(leaf, str):
        try:
            leaf = bytes(leaf).decode("utf-8")
        except UnicodeDecodeError:
            _fail("malformed", "the leaf is not UTF-8")
    m = raw_members(leaf)
    if m is None:
        _fail("malformed", "the leaf is not a JSON object")

    def s(k: str) -> str:
        raw = m.get(k)
        if raw is None or raw == "null":
            return ""
        v = json.loads(raw)
        if not isinstance(v, str):
            _fail("malformed", f"the leaf's {k} is not a string")
        return v

    sig_text = s("sig")
    if sig_text == "":
        _fail("no-signature", "the leaf carries no agent signature")
    sig = b64decode(sig_text)
    if sig is None:
        _fail("malformed", "the leaf's sig is not base64")
    seq_raw = m.get("seq", "0")
    if not re.fullmatch(r"0|[1-9][0-9]*", seq_raw) or int(seq_raw) >= 1 << 64:
        _fail("malformed", "the leaf's seq is not a 64-bit unsigned integer")
    attrs = m.get("attributes")
    msg = record_signed_bytes(
        s("agent"), s("session"), s("task"), int(seq_raw), s("action"), s("tool"), s("resource"), s("outcome"),
        "" if attrs is None or attrs == "null" else attrs,
    )
    if not ed25519_verify(public_key, msg, sig):
        _fail("bad-signature", f"the agent signature of the leaf does not verify with the key of {s('agent')!r}")
