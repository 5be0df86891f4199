"""`run`: the daemon as a school's gateway runs it (see monitor/daemon.py); `proxy`: its proxy alone."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.commands.config_commands import add_config_argument, load_chosen_config
from monitor.config.loader import config_choice


def run(args: argparse.Namespace) -> int:
    from monitor.daemon import Daemon, RunOptions

    choice = config_choice(args.config)  # named in the daemon's config_loaded and running events
    options = RunOptions(
        config_path=choice.path,
        config_source=choice.reason,
        interfaces=args.interface or None,
        pcap=[Path(p) for p in args.pcap] if args.pcap else None,
        capture=not args.no_capture,
        proxy=not args.no_proxy,
        metrics_listen=args.metrics_listen,
        proxy_listen=args.proxy_listen,
    )
    return Daemon(options).run()


def proxy(args: argparse.Namespace) -> int:
    from monitor.proxy.launcher import listen_overridden, main, proxy_arguments

    passed = args.mitmdump_options[1:] if args.mitmdump_options[:1] == ["--"] else args.mitmdump_options
    config = load_chosen_config(args.config)  # a broken config is named here, field by field
    listen = config.model.listen
    # as quiet as the daemon's child: errors only, no line per client connection (`-v` asks for more)
    ours = proxy_arguments(listen.proxy, listen.proxy_mode, config.path)
    return main(["--quiet", *listen_overridden(ours, listen.proxy_mode, passed), *passed])


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the daemon: sensor, proxy, store writer and metrics")
    add_config_argument(p)
    p.add_argument("--interface", action="append", help="capture on this interface (repeatable); "
                   "default: capture.interfaces from the config, else the default route's")
    p.add_argument("--pcap", action="append", help="read this capture file instead of live traffic")
    p.add_argument("--no-capture", action="store_true", help="do not run the packet sensor")
    p.add_argument("--no-proxy", action="store_true", help="do not run the proxy")
    p.add_argument("--metrics-listen", help="host:port for /metrics (overrides listen.metrics)")
    p.add_argument("--proxy-listen", help="host:port for the proxy (overrides listen.proxy)")
    p.set_defaults(func=run)

    p = sub.add_parser(
        "proxy", help="run only the proxy (mitmdump with the addon built in), in the foreground",
        description="Run the proxy the daemon would run, without the sensor or the metrics endpoint. "
        "Options after the config go to mitmdump, e.g. `-- --set proxyauth=@/etc/htpasswd`; "
        "they override the config's listen.proxy and listen.proxy_mode.",
    )
    add_config_argument(p)
    p.add_argument("mitmdump_options", nargs=argparse.REMAINDER, help="mitmdump options (after --)")
    p.set_defaults(func=proxy)
