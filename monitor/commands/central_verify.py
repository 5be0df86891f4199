"""`verify --against central`: a gateway's store, or an export from the central store, checked there.

For a store: the central store's latest signed head of the gateway.

The central store took that head only after checking its signature with the key
registered for the gateway (`monitor.store.postgres.heads`), so it is an anchor
off the box: a gateway file rewritten since (even re-signed with the gateway's
own key) no longer holds it. The head's signature is checked again here, with
the key the central store registered, never a key found beside the store.

For an export directory from the central store (`export --scope trust`, `sar --central`,
an investigation with `--central`): its files and signature as for any export, then each
gateway's cursor and signed head in its manifest's ``sources`` (and an investigation's
evidence records) against the central store now (`monitor.store.postgres.sources`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.store.base import SessionStore


def central_params(config: Any, where: str) -> Any:
    """Connection parameters: the config's `store.central` for 'central', else the URL given
    (its password from ``SOCIAL_MONITOR_CENTRAL_PASSWORD``, never the command line)."""
    from monitor.store.postgres.connect import conninfo

    if where != "central":
        return conninfo(where, field="--against")
    settings = config.model.store
    if not settings.central:
        raise UserError(f"{config.path}: --against central: store.central is not set")
    password_file = config.resolve(settings.central_password_file) if settings.central_password_file else None
    return conninfo(settings.central, password_file=password_file)


def verify_against_central(store: SessionStore, store_path: Path, anchors: list[str], config: Any,
                           summary: str) -> int:
    """0 when the store holds the central store's latest head for this gateway; 1 (one line why) if not."""
    import psycopg

    from monitor.store.anchors import AnchorFault
    from monitor.store.postgres.central import CentralStore
    from monitor.store.postgres.connect import shown
    from monitor.store.signing import parse_public_key

    if config.model.gateway is None:
        raise UserError(f"{config.path}: --against central: gateway.id is not set")
    gateway = config.model.gateway.id
    for anchor in anchors:
        params = central_params(config, anchor)
        label = shown(params) if isinstance(params, dict) else anchor
        try:
            with CentralStore(params) as central:
                latest = central.latest_head(gateway)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"central store {label}: {first}") from None
        except LookupError as exc:
            raise UserError(f"central store {label}: {exc.args[0]}") from None
        if latest is None:
            raise UserError(f"central store {label}: holds no signed head of gateway {gateway} yet "
                            "(is its public key registered, and has it shipped?)")
        head, key_text = latest
        _, fault = store.check_heads([head], parse_public_key(key_text, f"central key of {gateway}"))
        if fault is not None:
            problem = fault.problem if isinstance(fault, AnchorFault) else f"{fault} (not an anchor)"
            kind = f"{fault.kind}: " if isinstance(fault, AnchorFault) else ""
            print(f"{store_path}: chain broken against the central store ({label}): {kind}{problem}",
                  file=sys.stderr)
            return 1
        summary += f"; holds the central store's signed head {head.seq} (record {head.record_id}) of {label}"
    print(f"{store_path}: {summary}")
    return 0


def _export_params(config: Any, where: str) -> Any:
    """'central' (or `--central` alone) reads through store.central_reader, else store.central; or a URL."""
    from monitor.commands.trust_commands import USE_CONFIG
    from monitor.commands.trust_commands import central_params as reader_params

    if where in ("central", USE_CONFIG):
        if config.model.store.central_reader or not config.model.store.central:
            return reader_params(config, USE_CONFIG)
        return central_params(config, "central")
    return reader_params(config, where) if config is not None else central_params(None, where)


def verify_export_against_central(path: Path, config_path: str | None, public_key: str | None,
                                  anchors: list[str]) -> int:
    """`verify DIR --against central`: the export's files and signature, then its sources, centrally."""
    import psycopg

    from monitor.commands.config_commands import load_chosen_config
    from monitor.commands.export_commands import print_verify
    from monitor.exports.evidence import EVIDENCE
    from monitor.store.postgres.central import CentralStore
    from monitor.store.postgres.connect import shown
    from monitor.store.postgres.sources import check_sources, evidence_hashes

    ok = print_verify(path, config_path, public_key) == 0
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 1  # print_verify named it
    sources = manifest.get("sources") if isinstance(manifest, dict) else None
    if not isinstance(sources, dict):
        raise UserError(f"{path}: not an export from the central store (its manifest names no sources): "
                        "check a gateway's export on the gateway, `verify --against DIR`")
    evidence = None
    if (path / EVIDENCE).is_file():
        try:
            with (path / EVIDENCE).open(encoding="utf-8") as fh:
                evidence = evidence_hashes(json.loads(line) for line in fh if line.strip())
        except (ValueError, KeyError, TypeError):
            evidence = None  # print_verify named the line at fault
    needs_config = any(a in ("central", "config") for a in anchors)
    config = load_chosen_config(config_path) if needs_config or config_path else None
    for anchor in anchors:
        params = _export_params(config, anchor)
        label = shown(params) if isinstance(params, dict) else anchor
        try:
            with CentralStore(params) as central:
                checks = check_sources(central, sources, evidence)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"central store {label}: {first}") from None
        for check in checks:
            print(check.line, file=sys.stdout if check.ok else sys.stderr)
        held = all(c.ok for c in checks)
        ok = ok and held
        verdict = "hold" if held else "do NOT hold"
        print(f"{path}: the sources of {len(checks)} gateways {verdict} against the central store {label}",
              file=sys.stdout if held else sys.stderr)
    return 0 if ok else 1


__all__ = ["central_params", "verify_against_central", "verify_export_against_central"]
