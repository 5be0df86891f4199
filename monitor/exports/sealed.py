"""Export files that cannot be read by others or changed unnoticed: private from the first byte, sealed.

Files are created 0600 inside a 0700 directory, with the mode given to
``os.open`` so there is no moment when they are readable by others. The
directory is built under a temporary name and renamed into place, so a
half-written export never looks like a finished one. ``manifest.json`` holds
each file's SHA-256 and size; `monitor.exports.verify` checks a directory
against it. The manifest is signed with the gateway's Ed25519 key (`signature`:
the key and the signature over the manifest's canonical JSON without that field),
so `verify DIR --public-key KEY` checks an export on any machine.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import shutil
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from monitor import __version__
from monitor.config.loader import Config
from monitor.exports.log import LogEntry, append, write_failure
from monitor.exports.request import ExportError
from monitor.store.files import make_private_dirs
from monitor.store.sessions import canonical_json
from monitor.store.signing import fingerprint, parse_public_key, public_key_text

MANIFEST = "manifest.json"
FORMAT = "social-monitor-export"
FORMAT_VERSION = 1
DIR_MODE = 0o700
FILE_MODE = 0o600


def create_private(path: Path) -> int:
    """A new file, 0600 from its first byte (never chmod after the fact); refuses to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # whatever the umask
    return fd


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class ExportWriter:
    """Writes one export directory under a temporary name, then renames it into place."""

    def __init__(self, out: Path):
        self.out = out
        if out.exists():
            raise ExportError(f"{out}: already exists; an export is never written over (choose a new --out)")
        parent = out.parent
        try:
            make_private_dirs(parent)
            self.tmp = parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
            os.mkdir(self.tmp, DIR_MODE)
            os.chmod(self.tmp, DIR_MODE)
        except OSError as exc:
            raise ExportError(f"{parent}: cannot create the export directory: {exc.strerror}") from None
        self.files: dict[str, dict[str, Any]] = {}

    def open_text(self, name: str):
        return os.fdopen(create_private(self.tmp / name), "w", encoding="utf-8", newline="")

    def add_text(self, name: str, text: str) -> None:
        with self.open_text(name) as fh:
            fh.write(text)

    def seal(
        self, manifest: dict[str, Any], before_rename: Callable[[Path, str], Any] | None = None,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> tuple[Path, str]:
        """Hash every file into the manifest, write it, and rename the directory into place.

        `before_rename(out, manifest_sha256)` runs last before the rename (the export log's
        append): if it fails, no export appears without its log entry."""
        for name in sorted(os.listdir(self.tmp)):
            digest, size = sha256_file(self.tmp / name)
            self.files[name] = {"sha256": digest, "bytes": size}
        manifest["files"] = self.files
        if signing_key is not None:
            manifest["signature"] = sign_manifest(signing_key, manifest)
        text = json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
        self.add_text(MANIFEST, text)
        manifest_hash = hashlib.sha256(text.encode()).hexdigest()
        if before_rename is not None:
            before_rename(self.out, manifest_hash)
        try:
            os.rename(self.tmp, self.out)
        except OSError as exc:
            self.abort()
            raise ExportError(f"{self.out}: cannot move the export into place: {exc.strerror}") from None
        return self.out, manifest_hash

    def seal_logged(
        self, manifest: dict[str, Any], log_path: Path | None,
        entry_for: Callable[[Path, Path, str], LogEntry], signing_key: Ed25519PrivateKey | None = None,
    ) -> tuple[Path, str, LogEntry | None]:
        """`seal`, with `entry_for(log_path, out, manifest_sha256)` appended to the export log at `log_path`
        (when there is one) just before the rename; (where, the manifest's hash, the entry appended)."""
        logged: list[LogEntry] = []

        def log_it(out: Path, manifest_hash: str) -> None:
            if log_path is not None:
                logged.append(append(log_path, entry_for(log_path, out, manifest_hash)))

        out, manifest_hash = self.seal(manifest, before_rename=log_it, signing_key=signing_key)
        return out, manifest_hash, logged[0] if logged else None

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def failed(self, exc: BaseException) -> BaseException:
        """Remove the unfinished directory; what to raise instead of `exc` (an OSError as one line).

        Nothing is left behind: the temporary directory goes, and the export log is appended
        only once every file is written (`seal`)."""
        self.abort()
        if isinstance(exc, OSError):  # the file it names (the export log, say), else the export
            where = Path(os.fsdecode(exc.filename)) if exc.filename else self.out
            return ExportError(f"{write_failure(where, exc)}; the export was not written")
        return exc


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    """What a manifest's signature covers: the manifest without `signature`, in canonical JSON."""
    return canonical_json({k: v for k, v in manifest.items() if k != "signature"}).encode()


def sign_manifest(key: Ed25519PrivateKey, manifest: dict[str, Any]) -> dict[str, str]:
    return {"algorithm": "ed25519", "key": public_key_text(key.public_key()),
            "value": base64.b64encode(key.sign(signed_bytes(manifest))).decode()}


def signature_problem(manifest: dict[str, Any], key: Ed25519PublicKey | None) -> tuple[str | None, str]:
    """(problem, what was checked): None when the manifest's signature holds under `key`.

    Without a `key` the manifest's own key is used: that catches an edit made without re-signing,
    but only a key obtained elsewhere (the report, the privacy notice) proves who signed."""
    sig = manifest.get("signature")
    if sig is None:
        return ("NOT SIGNED (a manifest written before signing, or its signature was removed)"
                if key is not None else None), "not signed"
    trusted = key if key is not None else parse_public_key(sig["key"], "manifest.json: signature.key")
    if sig["key"] != public_key_text(trusted):
        expected = fingerprint(public_key_text(trusted))
        return f"SIGNED BY ANOTHER KEY ({fingerprint(sig['key'])}, expected {expected})", ""
    try:
        trusted.verify(base64.b64decode(sig["value"], validate=True), signed_bytes(manifest))
    except (InvalidSignature, binascii.Error, ValueError):
        return "SIGNATURE DOES NOT MATCH (the manifest was changed after the export)", ""
    how = "the given public key" if key is not None else "its own key only: give --public-key to prove whose"
    return None, f"signed by key {fingerprint(sig['key'])} (checked with {how})"


def base_manifest(config: Config, kind: str, user: str, now: float) -> dict[str, Any]:
    """What every manifest starts with: the format, the tool, when, by whom, where, under which config."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "tool": {"name": "social-monitor", "version": __version__},
        "created_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "created_by": user,
        "host": socket.gethostname(),
        "trust": config.trust.name,
        "config_fingerprint": config.fingerprint,
    }


__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "ExportWriter",
    "base_manifest",
    "create_private",
    "sha256_file",
    "sign_manifest",
    "signature_problem",
    "signed_bytes",
]
