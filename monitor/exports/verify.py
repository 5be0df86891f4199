"""Checking an export directory against its manifest, the manifest against its signature and the export log.

`verify_export(DIR, public_key=KEY)` needs nothing from the gateway: the manifest's
signature and its signed chain head are checked under the public key printed in
every report and in the privacy notice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from monitor.exports.evidence import EVIDENCE, check_evidence
from monitor.exports.log import read_log
from monitor.exports.sealed import FORMAT, MANIFEST, sha256_file, signature_problem
from monitor.store.signing import HeadError, SignedHead, parse_public_key

HEX = frozenset("0123456789abcdef")


def verify_export(
    directory: str | Path, log_path: str | Path | None = None, public_key: Ed25519PublicKey | None = None
) -> tuple[bool, list[str]]:
    """Check every file of an export against its manifest; name each file that differs.

    Returns (ok, lines): one line per file, and a last line with the verdict.
    A file missing, changed or added is a failure. With `log_path`, the
    manifest itself must be the one the export log recorded, so rewriting a
    file *and* its manifest entry is caught too."""
    d = Path(directory)
    lines: list[str] = []
    try:
        manifest = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False, [f"{d}: no {MANIFEST}: not an export directory"]
    except (ValueError, OSError) as exc:
        return False, [f"{d / MANIFEST}: unreadable manifest: {exc}"]
    if problem := manifest_problem(manifest):
        return False, [f"{d / MANIFEST}: malformed manifest: {problem}"]
    files = manifest["files"]
    ok = True
    for name in sorted(files):
        expected = files[name]
        path = d / name
        if not path.is_file() or Path(name).name != name:
            lines.append(f"{name}: MISSING")
            ok = False
            continue
        digest, size = sha256_file(path)
        if digest != expected.get("sha256"):
            where = _first_difference(size, expected.get("bytes"))
            lines.append(f"{name}: CHANGED ({where}; sha256 {digest[:16]}…, manifest says "
                         f"{str(expected.get('sha256'))[:16]}…)")
            ok = False
        else:
            lines.append(f"{name}: ok ({size} bytes, sha256 {digest[:16]}…)")
    for name in sorted(os.listdir(d)):
        if name != MANIFEST and name not in files:
            lines.append(f"{name}: NOT IN MANIFEST (added after the export)")
            ok = False
    if EVIDENCE in files and (d / EVIDENCE).is_file():  # an investigation: every record recomputed
        held, line = check_evidence(d, manifest)
        lines.append(line)
        ok = held and ok
    ok = _check_signature(manifest, public_key, lines) and ok
    if log_path is not None:
        ok = _check_log(d, Path(log_path), lines) and ok
    head = manifest.get("chain_head") or {}
    verdict = "export ok" if ok else "export FAILED verification"
    anchor = f"store chain head at export: record {head.get('record_id')} {str(head.get('hash'))[:16]}…"
    if isinstance(sources := manifest.get("sources"), dict):  # from the central store: a cursor per gateway
        anchor = "central cursors at export: " + ("; ".join(
            f"{g} record {(s.get('cursor') or {}).get('record_id')}" for g, s in sorted(sources.items())
            if isinstance(s, dict)) or "no gateway")
    lines.append(f"{d}: {verdict}: {len(files)} files; {anchor}")
    return ok, lines


def manifest_problem(manifest: Any) -> str | None:
    """The first field of a manifest that is not what `seal` writes, named; None when its shape holds."""
    if not isinstance(manifest, dict):
        return f"not a JSON object (a {type(manifest).__name__})"
    if manifest.get("format") != FORMAT:
        return f"format: {manifest.get('format')!r} is not {FORMAT!r} (not a social-monitor export manifest)"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return "files: missing or not an object"
    for name, entry in files.items():
        if not isinstance(entry, dict):
            return f"files.{name}: not an object"
        digest, size = entry.get("sha256"), entry.get("bytes")
        if not isinstance(digest, str) or len(digest) != 64 or not all(c in HEX for c in digest):
            return f"files.{name}.sha256: not a SHA-256 in hex"
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return f"files.{name}.bytes: not a size in bytes"
    head = manifest.get("chain_head")
    if head is not None and not isinstance(head, dict):
        return "chain_head: not an object"
    sig = manifest.get("signature")
    if sig is not None and (not isinstance(sig, dict) or not all(isinstance(sig.get(k), str)
                                                                  for k in ("key", "value"))):
        return "signature: not an object with a key and a value"
    if manifest.get("signed_head") is not None:
        try:
            SignedHead.from_dict(manifest["signed_head"], "signed_head")
        except HeadError as exc:
            return str(exc)
    return None


def _check_signature(manifest: dict[str, Any], key: Ed25519PublicKey | None, lines: list[str]) -> bool:
    """The manifest's signature, then its signed chain head: both under `key` (see `signature_problem`)."""
    try:
        problem, checked = signature_problem(manifest, key)
    except HeadError as exc:
        problem, checked = str(exc), ""
    if problem:
        lines.append(f"manifest.json: {problem}")
        return False
    lines.append(f"manifest.json: {checked}")
    if manifest.get("signed_head") is None or manifest.get("signature") is None:
        return True
    head = SignedHead.from_dict(manifest["signed_head"], "signed_head")
    chain = manifest.get("chain_head") or {}
    trusted = key or _own_key(manifest)
    if trouble := head.verify(trusted):
        lines.append(f"manifest.json: signed_head: {trouble}")
        return False
    if (head.record_id, head.hash) != (chain.get("record_id"), chain.get("hash")):
        lines.append(f"manifest.json: signed_head names record {head.record_id}, chain_head record "
                     f"{chain.get('record_id')}: the manifest's anchors disagree")
        return False
    lines.append(f"manifest.json: signed chain head {head.seq} (record {head.record_id}, {head.signed_at}) "
                 "ok")
    return True


def _own_key(manifest: dict[str, Any]) -> Ed25519PublicKey:
    return parse_public_key(manifest["signature"]["key"], "manifest.json: signature.key")


def _check_log(d: Path, log_path: Path, lines: list[str]) -> bool:
    digest, _ = sha256_file(d / MANIFEST)
    check = read_log(log_path)
    match = next((x for x in check.entries if x.manifest_sha256 == digest), None)
    ok = check.ok
    if match is not None:
        lines.append(f"manifest.json: matches export log entry {match.seq} ({match.at}, by {match.user})")
    else:
        ok = False
        lines.append(f"manifest.json: NOT IN THE EXPORT LOG {log_path} (the manifest was changed after the "
                     "export, or the export was not made from this store)")
    if not check.ok:
        lines.append(f"export log: {check.problem}")
    return ok


def _first_difference(size: int, expected: Any) -> str:
    if isinstance(expected, int) and expected != size:
        return f"{size} bytes, manifest says {expected}"
    return "same size, content differs"


__all__ = ["manifest_problem", "verify_export"]
