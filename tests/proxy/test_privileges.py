"""The proxy gives up every capability: read back from /proc, in a process of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.proxy.privileges import Capabilities

STATUS = """Name:\tpython
CapInh:\t0000000000000000
CapPrm:\t0000000000003000
CapEff:\t0000000000003000
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000003000
"""


@pytest.mark.parametrize(("field", "value"), [
    ("inheritable", 0),
    ("permitted", 0x3000),  # CAP_NET_ADMIN (12) and CAP_NET_RAW (13)
    ("effective", 0x3000),
    ("bounding", 0x1FFFFFFFFFF),
    ("ambient", 0x3000),
])
def test_parse_status(field, value):
    assert getattr(Capabilities.parse(STATUS), field) == value


@pytest.mark.parametrize(("status", "held"), [
    (STATUS, True),
    (STATUS.replace("0000000000003000", "0000000000000000"), False),
    (STATUS.replace("CapPrm:\t0000000000003000", "CapPrm:\t0000000000000000").replace(
        "CapEff:\t0000000000003000", "CapEff:\t0000000000000000"), True),  # ambient alone still holds
])
def test_held(status, held):
    assert Capabilities.parse(status).held is held


def test_parse_names_a_missing_line():
    with pytest.raises(ValueError, match="no CapAmb line"):
        Capabilities.parse(STATUS.replace("CapAmb", "Other"))


DROP = ("from monitor.proxy.privileges import drop_all, Capabilities; drop_all(); "
        "c = Capabilities.of(); print(c.inheritable, c.permitted, c.effective, c.ambient, c.bounding)")
# what deploy/social-monitor.service gives the daemon: these two, ambient, and a bounding set of them
CAPTURE_CAPS = ["--inh-caps=-all,+net_raw,+net_admin", "--ambient-caps=-all,+net_raw,+net_admin",
                "--bounding-set=-all,+net_raw,+net_admin"]


@pytest.mark.integration
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux only")
@pytest.mark.parametrize("start", ["as-is", "with-capture-caps"])
def test_drop_all_leaves_nothing(start):
    """As the tests run (root: every capability), and as systemd starts the daemon (ambient
    CAP_NET_RAW and CAP_NET_ADMIN): nothing is left, not even in the bounding set when allowed."""
    if start == "with-capture-caps" and (os.geteuid() != 0 or shutil.which("setpriv") is None):
        pytest.skip("needs root and setpriv")
    prefix = ["setpriv", *CAPTURE_CAPS, "--"] if start == "with-capture-caps" else []
    before = subprocess.run([*prefix, sys.executable, "-c", "print(open('/proc/self/status').read())"],
                            capture_output=True, text=True, timeout=60, check=True)
    held = Capabilities.parse(before.stdout)
    if prefix:
        assert (held.effective, held.ambient, held.bounding) == (0x3000, 0x3000, 0x3000)
    else:
        assert held.held is (os.geteuid() == 0)
    after = subprocess.run([*prefix, sys.executable, "-c", DROP], capture_output=True, text=True,
                           timeout=60, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    inheritable, permitted, effective, ambient, bounding = map(int, after.stdout.split())
    assert (inheritable, permitted, effective, ambient) == (0, 0, 0, 0)
    # root held CAP_SETPCAP, so the bounding set is emptied too; without it, it stays as it was
    assert bounding == (0x3000 if prefix else 0 if os.geteuid() == 0 else bounding)


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
@pytest.mark.parametrize("mode", ["regular", "transparent"])
def test_the_daemons_proxy_child_holds_no_capability(tmp_path, write_config, example_data, mode):
    """`social-monitor run` started as systemd starts it: the daemon keeps CAP_NET_RAW and
    CAP_NET_ADMIN for capture, its mitmproxy child (which parses clients' bytes) holds none."""
    import time

    from tests.proxy_helpers import free_port, wait_for_port

    example_data["listen"]["proxy_mode"] = mode
    example_data["store"]["path"] = str(tmp_path / "store.db")
    config = write_config(example_data)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    daemon = subprocess.Popen(
        ["setpriv", *CAPTURE_CAPS, "--", sys.executable, "-m", "monitor", "run", "--config", str(config),
         "--no-capture", "--metrics-listen", "127.0.0.1:0", "--proxy-listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=os.getcwd())
    try:
        wait_for_port(port, timeout=30, proc=daemon)
        children: list[str] = []
        deadline = time.monotonic() + 10
        while not children and time.monotonic() < deadline:
            children = Path(f"/proc/{daemon.pid}/task/{daemon.pid}/children").read_text().split()
        [child] = children
        parent_caps, child_caps = Capabilities.of(daemon.pid), Capabilities.of(child)
        cmdline = Path(f"/proc/{child}/cmdline").read_text()
    finally:
        daemon.terminate()
        daemon.wait(30)
    assert "monitor.proxy.launcher" in cmdline and f"{mode}@127.0.0.1:{port}" in cmdline
    assert (parent_caps.effective, parent_caps.ambient) == (0x3000, 0x3000)  # capture still can
    assert (child_caps.inheritable, child_caps.permitted, child_caps.effective, child_caps.ambient) == (
        0, 0, 0, 0)
