"""Signed chain heads: which gateway wrote the records, anchored off the box.

The gateway holds one Ed25519 key (``<store>.signing-key.pem`` in the service's
state directory, 0600, created on first start). Every few minutes, and at every
export, it signs its chain head: "record N of my chain has hash H", numbered,
and naming the digest of the head it signed before. A signature proves which
gateway wrote the records; it does not stop a root insider who holds the key,
so each head also leaves the box as it is made (a journal line, the export log,
the trust's central store). A copy held elsewhere is the anchor: `verify
--against` proves the store still holds that head and every record before it.

The contract with whoever receives heads (the central store, an auditor's script)
--------------------------------------------------------------------------------
A head travels as the JSON object `SignedHead.to_dict()` (in a journal line it is
the ``signed_head`` field of a ``chain_head_signed`` event). The receiver:

1. parses it with `SignedHead.from_dict` (a malformed head is a `HeadError` naming the field);
2. calls `head.verify(public_key)` with the key it registered for that gateway
   (not the key the head carries): None means the signature holds;
3. holds it to the last head it accepted from that gateway with `successor_problem`:
   the sequence must grow, and the very next number must name the digest of the one
   before (a gap is allowed: heads made while the link was down may never arrive);
   two different heads with one number are a fork, which only a rewrite produces;
4. checks that the records it holds from that gateway have `hash` at `record_id`.

A key rotation is itself a head, signed by the old key, whose ``next_key`` names
the new one: a receiver follows the rotation only through such a head.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.errors import UserError
from monitor.logsetup import get_logger
from monitor.store.chain import GENESIS, ChainHead
from monitor.store.sessions import canonical_json

if TYPE_CHECKING:  # cryptography is imported where a key is used: reading the store needs none (~40 ms)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = get_logger("monitor.store.signing")

HEAD_FORMAT = "social-monitor-signed-head/1"
KEY_PREFIX = "ed25519:"
SIGN_INTERVAL = 300.0  # seconds between the writer's signed heads


class HeadError(UserError):
    """A signed head, a key or a head file that cannot be used: one line naming it."""


def _serialization() -> Any:
    """cryptography's key serialization, imported on first use: commands that only read the store
    (events, platforms) need no PEM or raw key handling, and it costs ~10 ms to import."""
    from cryptography.hazmat.primitives import serialization

    return serialization


def _ed25519() -> Any:
    """cryptography's Ed25519 module, imported on first use (as `_serialization`)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def key_path_for(store_path: str | Path) -> Path:
    """Where a store's signing key lives: beside it, in the service's state directory."""
    path = Path(store_path)
    return path.with_name(path.name + ".signing-key.pem")


def public_key_text(key: Ed25519PublicKey) -> str:
    """The public key as one short line anyone can copy: ``ed25519:`` and the raw key in base64."""
    raw = key.public_bytes(_serialization().Encoding.Raw, _serialization().PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode()


def fingerprint(key_text: str) -> str:
    """A shorter handle for a public key, for reports and logs (SHA-256, first 16 hex digits)."""
    return hashlib.sha256(key_text.encode()).hexdigest()[:16]


def parse_public_key(text: str, where: str = "--public-key") -> Ed25519PublicKey:
    """A public key given as ``ed25519:BASE64``, or a file holding that line or a PEM public key."""
    value = text.strip()
    path = Path(value)
    if not value.startswith(KEY_PREFIX) and path.is_file():
        where, data = str(path), path.read_bytes()
        if data.lstrip().startswith(b"-----BEGIN"):
            try:
                key = _serialization().load_pem_public_key(data)
            except ValueError as exc:
                raise HeadError(f"{where}: not a PEM public key: {exc}") from None
            if not isinstance(key, _ed25519().Ed25519PublicKey):
                raise HeadError(f"{where}: not an Ed25519 public key")
            return key
        value = data.decode("utf-8", "replace").strip()
    if not value.startswith(KEY_PREFIX):
        raise HeadError(f"{where}: {value[:40]!r} is not a public key (expected {KEY_PREFIX}BASE64 "
                        "or a file)")
    try:
        raw = base64.b64decode(value[len(KEY_PREFIX):], validate=True)
        return _ed25519().Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise HeadError(f"{where}: {value[:40]!r} is not an Ed25519 public key (32 bytes in "
                        "base64)") from None


def load_or_create_key(path: str | Path) -> Ed25519PrivateKey:
    """The gateway's signing key; a new one, 0600 from its first byte, when there is none yet."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _create_key(path)
    except OSError as exc:
        raise HeadError(f"{path}: cannot read the signing key: {exc.strerror or exc}") from None
    try:
        key = _serialization().load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise HeadError(f"{path}: not a usable signing key: {exc}") from None
    if not isinstance(key, _ed25519().Ed25519PrivateKey):
        raise HeadError(f"{path}: not an Ed25519 private key")
    return key


def _create_key(path: Path, replace_existing: bool = False) -> Ed25519PrivateKey:
    key = _ed25519().Ed25519PrivateKey.generate()
    pem = key.private_bytes(_serialization().Encoding.PEM, _serialization().PrivateFormat.PKCS8,
                            _serialization().NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        if replace_existing:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # never over a key another process made meanwhile
            os.unlink(tmp)
    except FileExistsError:
        os.unlink(tmp)
        return load_or_create_key(path)
    except OSError as exc:
        raise HeadError(f"{path}: cannot create the signing key: {exc.strerror or exc}") from None
    log.info("signing_key_created", path=str(path), public_key=public_key_text(key.public_key()))
    return key


def public_key_of(store_path: str | Path) -> str | None:
    """The public key of a store's signing key, if it has one yet (never creates it)."""
    path = key_path_for(store_path)
    if not path.exists():
        return None
    return public_key_text(load_or_create_key(path).public_key())


@dataclass(frozen=True, slots=True)
class SignedHead:
    """Record `record_id` of a gateway's chain has `hash`: signed, numbered, naming the head before."""

    seq: int
    record_id: int
    hash: str
    signed_at: str  # ISO 8601 UTC
    reason: str  # start | interval | export | rotation
    prev: str  # `digest()` of the head signed before this one, GENESIS for the first
    key: str  # the signing key, ``ed25519:BASE64``
    signature: str = ""  # base64 Ed25519 over `payload()`
    next_key: str | None = None  # only on a rotation: the key that signs from now on

    @property
    def chain_head(self) -> ChainHead:
        return ChainHead(self.record_id, self.hash)

    def payload(self) -> bytes:
        """What is signed: every field but the signature, with the format, in canonical JSON."""
        body = asdict(self)
        body.pop("signature")
        body["format"] = HEAD_FORMAT
        return canonical_json(body).encode()

    def digest(self) -> str:
        """SHA-256 of the whole head (signature included): what the next head names as `prev`."""
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    def verify(self, public_key: Ed25519PublicKey) -> str | None:
        """None when `public_key` (the receiver's own copy) signed this head; else the problem in words."""
        from cryptography.exceptions import InvalidSignature  # loaded already: `public_key` is its object

        if public_key_text(public_key) != self.key:
            return (f"signed head {self.seq} was signed by key {fingerprint(self.key)}, not the expected "
                    f"key {fingerprint(public_key_text(public_key))}")
        try:
            public_key.verify(base64.b64decode(self.signature), self.payload())
        except (InvalidSignature, binascii.Error, ValueError):
            return (f"signed head {self.seq} (record {self.record_id}): the signature does not match "
                    "its fields")
        return None

    @classmethod
    def from_dict(cls, data: Any, where: str = "signed head") -> SignedHead:
        """A head as received; each field is checked for type, and a bad one is named."""
        if not isinstance(data, dict):
            raise HeadError(f"{where}: not a JSON object")
        known = {f.name for f in fields(cls)}
        if extra := sorted(set(data) - known):
            raise HeadError(f"{where}: unknown field {extra[0]!r}")
        for name, kind in (("seq", int), ("record_id", int), ("hash", str), ("signed_at", str),
                           ("reason", str), ("prev", str), ("key", str), ("signature", str)):
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise HeadError(f"{where}: {name}: missing or not a {kind.__name__}")
        for name in ("hash", "prev"):
            if len(data[name]) != 64 or not all(c in "0123456789abcdef" for c in data[name]):
                raise HeadError(f"{where}: {name}: not a SHA-256 in hex")
        if data.get("next_key") is not None and not isinstance(data["next_key"], str):
            raise HeadError(f"{where}: next_key: not a string")
        return cls(**data)


def sign(
    key: Ed25519PrivateKey, head: ChainHead, previous: SignedHead | None, reason: str,
    now: float, next_key: str | None = None,
) -> SignedHead:
    """The head after `previous` (or the first), signed with `key`."""
    unsigned = SignedHead(
        seq=previous.seq + 1 if previous else 1,
        record_id=head.record_id,
        hash=head.hash,
        signed_at=datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        reason=reason,
        prev=previous.digest() if previous else GENESIS,
        key=public_key_text(key.public_key()),
        next_key=next_key,
    )
    return replace(unsigned, signature=base64.b64encode(key.sign(unsigned.payload())).decode())


def successor_problem(last: SignedHead | None, head: SignedHead) -> str | None:
    """Whether `head` may follow `last`, the latest head a receiver accepted (see the module's contract)."""
    if last is None:
        return None
    if head.seq == last.seq:
        return None if head.digest() == last.digest() else (
            f"two different signed heads numbered {head.seq}: the chain was rewritten and signed again")
    if head.seq < last.seq:
        return f"signed head {head.seq} is older than head {last.seq} already received"
    if head.seq == last.seq + 1 and head.prev != last.digest():
        return f"signed head {head.seq} does not name head {last.seq} before it: the heads were rewritten"
    if head.key != last.key and last.next_key != head.key:
        return f"signed head {head.seq} is signed by a new key that no rotation announced"
    return None


def heads_in(text: str, where: str) -> list[SignedHead]:
    """Every signed head in a file: a journal export (one ``chain_head_signed`` line each, any prefix
    journalctl adds), an export manifest, or a head's own JSON. None found is an error."""
    found: list[SignedHead] = []
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    chunks = [whole] if isinstance(whole, dict) else []
    if not chunks:
        for line in text.splitlines():
            start = line.find("{")
            if start < 0:
                continue
            try:
                chunks.append(json.loads(line[start:]))
            except ValueError:
                continue
    for n, data in enumerate(chunks, 1):
        if not isinstance(data, dict):
            continue
        head = data.get("signed_head", data if "signature" in data and "record_id" in data else None)
        if head is not None:
            found.append(SignedHead.from_dict(head, f"{where}: head {n}"))
    if not found:
        raise HeadError(f"{where}: no signed chain head in it (a chain_head_signed journal line, an export "
                        "manifest or a head's JSON)")
    return found


def rotate_key(path: str | Path, previous: SignedHead | None, head: ChainHead, now: float
               ) -> tuple[Ed25519PrivateKey, SignedHead]:
    """A new key: the old one signs a rotation head naming it, and is kept as ``*.retired-<time>``."""
    path = Path(path)
    old = load_or_create_key(path)
    retired = path.with_name(f"{path.name}.retired-{int(now)}")
    os.link(path, retired)
    created = _create_key(path, replace_existing=True)
    announce = sign(old, head, previous, "rotation", now, next_key=public_key_text(created.public_key()))
    log.warning("signing_key_rotated", path=str(path), retired=str(retired), old_key=announce.key,
                new_key=announce.next_key, signed_head=announce.to_dict())
    return created, announce


__all__ = [
    "HEAD_FORMAT",
    "SIGN_INTERVAL",
    "HeadError",
    "SignedHead",
    "fingerprint",
    "heads_in",
    "key_path_for",
    "load_or_create_key",
    "parse_public_key",
    "public_key_of",
    "public_key_text",
    "rotate_key",
    "sign",
    "successor_problem",
]
