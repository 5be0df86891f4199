"""The addon's mitmproxy options: names, types, defaults and the help `mitmdump --options` prints.

Every name carries the `social_monitor_` prefix, as mitmproxy's own addons
prefix theirs. `ProxySettings` is what a change to them rebuilds from: the
config file, the platforms to decrypt and where accesses are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mitmproxy.addonmanager import Loader

CONFIG = "social_monitor_config"
DECRYPT = "social_monitor_decrypt"
STORE = "social_monitor_store"
METRICS = "social_monitor_metrics"
EVENTS_JSONL = "social_monitor_events_jsonl"
# a change to any of these rebuilds the config, pipeline and sinks; METRICS only moves the endpoint
PIPELINE_OPTIONS = (CONFIG, DECRYPT, STORE, EVENTS_JSONL)


@dataclass(frozen=True)
class OptionSpec:
    """One `loader.add_option` call."""

    name: str
    type: Any
    default: Any
    help: str


OPTIONS = (
    OptionSpec(CONFIG, str, "", """
        Path of the trust's social-monitor config (YAML). Empty: the addon records
        nothing but still passes every TLS connection through undecrypted.
        """),
    OptionSpec(DECRYPT, Sequence[str], [], """
        Platform ids (e.g. tiktok) whose TLS connections the proxy may decrypt
        (needs mitmproxy's CA on the devices). Default empty: all TLS is passed
        through untouched and only the SNI is read.
        """),
    OptionSpec(STORE, bool, True, """
        Write recorded accesses to the store named by the config (store.path),
        through a writer thread with a bounded queue. Off: count and log only.
        """),
    OptionSpec(METRICS, str, "", """
        host:port where this mitmdump process serves its own Prometheus metrics
        (e.g. 127.0.0.1:9465; the daemon's endpoint is a different process).
        Empty: not served.
        """),
    OptionSpec(EVENTS_JSONL, str, "", """
        Also append every recorded access as one ECS JSON line to this file,
        written by a background thread. Empty: off.
        """),
)


def declare_options(loader: Loader) -> None:
    """The addon's `load` hook: declare every option."""
    for spec in OPTIONS:
        loader.add_option(spec.name, spec.type, spec.default, spec.help)


@dataclass(frozen=True)
class ProxySettings:
    """What the pipeline options say, read once so that a reload thread never touches mitmproxy's."""

    config_path: str
    decrypt: tuple[str, ...] = ()
    store: bool = True
    events_jsonl: str = ""

    @classmethod
    def from_options(cls, options: Any) -> ProxySettings:
        return cls(
            config_path=getattr(options, CONFIG),
            decrypt=tuple(getattr(options, DECRYPT)),
            store=getattr(options, STORE),
            events_jsonl=getattr(options, EVENTS_JSONL),
        )
