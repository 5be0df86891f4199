"""The school's proxy as the daemon runs it: mitmdump with the social_monitor addon built in.

    python -m monitor.proxy.launcher [mitmdump options] --set social_monitor_config=PATH
    social-monitor proxy --config PATH [mitmdump options]

`mitmdump -s addons/social_monitor.py` works as well and records the same
accesses. This entry point differs in two ways, both about the cost per event:

* the addon joins mitmproxy's addon chain directly, as mitmproxy's own addons
  do, where the script loader would put it (before NextLayer), instead of
  under the script loader (no file watcher, no module to search for every
  hook);
* mitmdump's flow printer (`Dumper`) is left out. Its job is printing URLs,
  which this proxy must never do (the addon pins `flow_detail` to 0 under `-s`
  for that reason), and mitmproxy dispatches every event to every addon in the
  chain whether it has a hook for it or not: under callgrind each addon in the
  chain costs about 3% of a plain-HTTP request's instructions
  (bench/proxy_bench.py --instructions).

Every other mitmdump option behaves as usual; extra `-s` scripts still load.
Before anything else it gives up every Linux capability (monitor/proxy/privileges.py):
the daemon keeps CAP_NET_RAW and CAP_NET_ADMIN for capture, the proxy needs none.
SIGHUP re-reads the config without dropping a connection (the daemon's reload).
Started by the daemon (which sets $SOCIAL_MONITOR_PARENT_PID), the proxy ends
with it even when the daemon is killed with SIGKILL and can clean up nothing.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def mode_spec(mode: str, listen: str) -> str:
    """mitmproxy's `mode@host:port` for one listen address. An IPv6 host goes without brackets
    (`regular@:::8080`): mitmproxy splits the port off at the last colon and would try to bind
    the name "[::]" with them."""
    from monitor.config.values import split_hostport

    host, port = split_hostport(listen)
    return f"{mode}@{host}:{port}"


def proxy_arguments(listen: str | Sequence[str], mode: str, config_file: Path) -> list[str]:
    """mitmdump options for a gateway's proxy: one `--mode` per listen address (IPv4 and IPv6 each
    need their own: a socket on [::] takes IPv6 only), the mode, the config."""
    addresses = [listen] if isinstance(listen, str) else list(listen)
    return [
        *(part for address in addresses for part in ("--mode", mode_spec(mode, address))),
        "--set", f"social_monitor_config={config_file}",
        # off because it would refuse a school's own global IPv6 clients too: the addon serves the
        # zones' networks only (monitor/proxy/clients.py), so an explicit proxy is never open
        "--set", "block_global=false",
        # regular mode: the TLS hello is read before any upstream connection is opened
        "--set", "connection_strategy=lazy",
    ]


LISTEN_OPTIONS = ("--mode", "-m", "--listen-host", "--listen-port", "-p")


def listen_overridden(config_arguments: list[str], mode: str, passed: Sequence[str]) -> list[str]:
    """The config's arguments, without its `--mode mode@host:port` specs when the options passed
    on the command line say where to listen: those name the port themselves, so mitmproxy would
    otherwise listen on both (or ignore --listen-host/--listen-port)."""
    if not any(arg.split("=", 1)[0] in LISTEN_OPTIONS for arg in passed):
        return config_arguments
    kept: list[str] = []
    skip = False
    for arg in config_arguments:
        if skip:
            skip = False
        elif arg == "--mode":
            skip = True
        else:
            kept.append(arg)
    given_mode = any(arg.split("=", 1)[0] in ("--mode", "-m") for arg in passed)
    return kept if given_mode else ["--mode", mode, *kept]


PARENT_PID_ENV = "SOCIAL_MONITOR_PARENT_PID"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> bool:
    """Ask Linux to send `signum` to this process when its parent dies; False if the parent is gone already.

    The parent-death signal is not inherited and a parent may die before it is set, hence the
    check of getppid() after setting it. SIGTERM, not SIGKILL: the proxy's own store writer
    then commits what it has queued. (Linux sends it when the thread that started this process
    ends, so the daemon starts its proxy from its main thread only.)"""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    except (OSError, AttributeError) as exc:  # not Linux: the daemon's SIGTERM handler still stops us
        print(f"social-monitor proxy: cannot follow the daemon's death: {exc}", file=sys.stderr)
    return os.getppid() == parent_pid


def main(argv: Sequence[str] | None = None) -> int:
    """Run mitmdump's command line with the addon in the chain and no flow printer; blocks until shutdown."""
    from monitor.proxy import privileges

    if os.path.exists("/proc/self/status"):  # Linux: give up the daemon's capture capabilities
        try:
            privileges.drop_all()
        except OSError as exc:  # never parse clients' bytes holding CAP_NET_ADMIN
            print(f"social-monitor proxy: cannot drop capabilities: {exc}", file=sys.stderr)
            return 1
    parent = os.environ.pop(PARENT_PID_ENV, "")
    if parent and not die_with_parent(int(parent)):
        print("social-monitor proxy: the daemon that started it is gone; exiting", file=sys.stderr)
        return 1
    # SIGHUP means "re-read the config" (the addon's handler, installed once the proxy runs); until
    # then it must not kill the process, as its default action would. The addon checks the file
    # once it is running, so a reload asked for in between is not lost.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from mitmproxy import exceptions
    from mitmproxy.addons.next_layer import NextLayer
    from mitmproxy.tools import cmdline
    from mitmproxy.tools import main as mitmproxy_main
    from mitmproxy.tools.dump import DumpMaster

    # mitmproxy's own records go to its TermLog (quiet with --quiet); the addon's are JSON lines on
    # stdout. A JSON handler left on the root logger (the command line's) would repeat every one of
    # mitmproxy's per-connection debug lines, client addresses included.
    logging.getLogger().handlers.clear()
    from monitor.proxy import redact
    from monitor.proxy.addon import SocialMonitor

    addon = SocialMonitor()

    class MonitoredProxy(DumpMaster):
        def __init__(self, options: Any) -> None:
            super().__init__(options, with_termlog=True, with_dumper=False)
            redact.install()  # mitmproxy's TermLog prints no path or query, at any verbosity
            self.addons.add(addon)
            # where `-s` scripts sit: before NextLayer, so that the addon's next_layer hook can pass
            # TLS through before mitmproxy sets up its TLS layer
            chain = self.addons.chain
            chain.remove(addon)
            chain.insert(next(i for i, a in enumerate(chain) if isinstance(a, NextLayer)), addon)

        async def running(self) -> None:
            await super().running()
            # Everything built so far (mitmproxy, the config, the catalog, the holiday tables) lives
            # as long as the process: out of the collector's sight, a full collection no longer walks
            # it (76 ms per full collection here with it, well under 1 ms without).
            gc.freeze()

    def no_filters(args: Any) -> dict:
        if args.filter_args:  # mitmdump's filter only chooses which flows the flow printer shows
            raise exceptions.OptionsError(
                f"unexpected arguments {' '.join(args.filter_args)!r}: this proxy prints no flows to filter"
            )
        return {}

    mitmproxy_main.run(MonitoredProxy, cmdline.mitmdump, list(sys.argv[1:] if argv is None else argv),
                       no_filters)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
