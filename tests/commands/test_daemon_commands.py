"""`run` and `proxy`: which options reach the daemon and mitmdump (the daemon itself: test_daemon.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import monitor.daemon
import monitor.proxy.launcher
from monitor.cli import build_parser
from monitor.config.loader import default_config_path
from monitor.daemon import RunOptions
from monitor.errors import ConfigError
from monitor.proxy.launcher import proxy_arguments
from tests.conftest import EXAMPLE


@pytest.fixture
def started(monkeypatch) -> list[RunOptions]:
    """The options each Daemon is built with; its run() returns 0 without starting anything."""
    options: list[RunOptions] = []

    class Recorder:
        def __init__(self, given: RunOptions):
            options.append(given)

        def run(self) -> int:
            return 0

    monkeypatch.setattr(monitor.daemon, "Daemon", Recorder)
    return options


def dispatch(argv: list[str]) -> int:
    """The parsed command's function, called as cli.main would (main itself would switch this test
    process to multi-process metrics for `run`)."""
    args = build_parser().parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["run"], "config_path", default_config_path()),
        (["run", "--config", "/etc/sm/trust.yaml"], "config_path", Path("/etc/sm/trust.yaml")),
        (["run"], "interfaces", None),
        (["run", "--interface", "eth1", "--interface", "eth2"], "interfaces", ["eth1", "eth2"]),
        (["run"], "pcap", None),
        (["run", "--pcap", "a.pcap", "--pcap", "b.pcap"], "pcap", [Path("a.pcap"), Path("b.pcap")]),
        (["run"], "capture", True),
        (["run", "--no-capture"], "capture", False),
        (["run"], "proxy", True),
        (["run", "--no-proxy"], "proxy", False),
        (["run", "--metrics-listen", "127.0.0.1:0"], "metrics_listen", "127.0.0.1:0"),
        (["run", "--proxy-listen", "0.0.0.0:3128"], "proxy_listen", "0.0.0.0:3128"),
    ],
    ids=["default-config", "config", "default-interfaces", "interfaces", "no-pcap", "pcaps", "capture",
         "no-capture", "proxy", "no-proxy", "metrics-listen", "proxy-listen"],
)
def test_run_passes_options_to_the_daemon(started, argv, field, value):
    assert dispatch(argv) == 0
    [options] = started
    assert getattr(options, field) == value


@pytest.fixture
def mitmdump(monkeypatch) -> list[list[str]]:
    """The argument lists the proxy launcher is given, instead of running mitmdump."""
    calls: list[list[str]] = []

    def record(argv: list[str]) -> int:
        calls.append(list(argv))
        return 0

    monkeypatch.setattr(monitor.proxy.launcher, "main", record)
    return calls


@pytest.mark.integration
@pytest.mark.parametrize(
    ("extra", "passed"),
    [
        ([], []),
        (["--", "--set", "proxyauth=@/etc/htpasswd"], ["--set", "proxyauth=@/etc/htpasswd"]),
        (["--", "--quiet", "--set", "x=1"], ["--quiet", "--set", "x=1"]),
    ],
    ids=["config-only", "one-option", "several-options"],
)
def test_proxy_passes_config_and_options_to_mitmdump(mitmdump, extra, passed):
    assert dispatch(["proxy", "--config", str(EXAMPLE), *extra]) == 0
    # quiet as the daemon's child, the example's listen.proxy and listen.proxy_mode, then what followed `--`
    assert mitmdump == [["--quiet", *proxy_arguments("127.0.0.1:8080", "regular", EXAMPLE), *passed]]


@pytest.mark.integration
def test_proxy_options_need_a_double_dash(mitmdump):
    with pytest.raises(SystemExit):
        dispatch(["proxy", "--config", str(EXAMPLE), "--quiet"])
    assert mitmdump == []


@pytest.mark.integration
def test_proxy_with_a_broken_config_names_the_field(mitmdump, write_config, example_data):
    example_data["listen"]["proxy"] = "nowhere"
    with pytest.raises(ConfigError, match=r"listen\.proxy"):
        dispatch(["proxy", "--config", str(write_config(example_data))])
    assert mitmdump == []
