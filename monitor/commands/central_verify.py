"""`verify --against central`: the gateway's store against the central store's latest signed head of it.

The central store took that head only after checking its signature with the key
registered for the gateway (`monitor.store.postgres.heads`), so it is an anchor
off the box: a gateway file rewritten since (even re-signed with the gateway's
own key) no longer holds it. The head's signature is checked again here, with
the key the central store registered, never a key found beside the store.
"""

from __future__ import annotations

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


__all__ = ["central_params", "verify_against_central"]
