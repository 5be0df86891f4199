"""The proxy's launcher: the mitmdump options it builds, and the proxy run from an installed wheel.

The integration tests build a wheel from the checkout, install it into a fresh
venv and run both ways of starting the proxy from a directory outside the
checkout: what a gateway installs is what is tested, package data included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from monitor.proxy.launcher import PARENT_PID_ENV, die_with_parent, listen_overridden, proxy_arguments
from monitor.store.sqlite import open_store
from tests.proxy_helpers import (
    ADDON_PATH,
    REDIRECT_PATH,
    ROOT,
    TEST_CONFIG,
    Origins,
    free_port,
    serve_origins,
    wait_for_port,
    wait_until_gone,
)


@pytest.mark.parametrize(
    ("listen", "mode", "specs"),
    [
        ("127.0.0.1:8080", "regular", ["regular@127.0.0.1:8080"]),
        ("0.0.0.0:3128", "transparent", ["transparent@0.0.0.0:3128"]),
        ("[::1]:3128", "regular", ["regular@::1:3128"]),
        ("[::]:8080", "transparent", ["transparent@:::8080"]),
        (["0.0.0.0:8080", "[::]:8080"], "transparent", ["transparent@0.0.0.0:8080", "transparent@:::8080"]),
    ],
)
def test_proxy_arguments_listen_where_and_how_the_config_says(listen, mode, specs):
    args = proxy_arguments(listen, mode, Path("/run/sm/current/config.yaml"))
    assert [value for flag, value in zip(args[::2], args[1::2], strict=True) if flag == "--mode"] == specs
    assert "--listen-host" not in args and "--listen-port" not in args


@pytest.mark.parametrize(("spec", "host", "port"), [
    ("regular@127.0.0.1:8080", "127.0.0.1", 8080),
    ("transparent@:::8080", "::", 8080),
    ("regular@::1:3128", "::1", 3128),
])
def test_mitmproxy_reads_the_mode_specs_as_meant(spec, host, port):
    from mitmproxy.proxy.mode_specs import ProxyMode

    mode = ProxyMode.parse(spec)
    assert (mode.custom_listen_host, mode.custom_listen_port) == (host, port)


OURS = proxy_arguments(["0.0.0.0:8080", "[::]:8080"], "regular", Path("c.yaml"))


@pytest.mark.parametrize(("passed", "modes"), [
    ([], ["regular@0.0.0.0:8080", "regular@:::8080"]),
    (["--set", "proxyauth=@/etc/htpasswd"], ["regular@0.0.0.0:8080", "regular@:::8080"]),
    (["--mode", "transparent@9090"], []),  # the command line's own --mode replaces the config's
    (["--mode=socks5"], []),
    (["--listen-port", "9090"], ["regular"]),  # mitmproxy's listen options apply to a plain mode
    (["-p", "9090", "--listen-host", "::1"], ["regular"]),
])
def test_listen_options_passed_replace_the_configs(passed, modes):
    args = listen_overridden(OURS, "regular", passed)
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "--mode"] == modes
    assert "social_monitor_config=c.yaml" in args


@pytest.mark.parametrize(
    "setting",
    [
        "social_monitor_config=/run/sm/current/config.yaml",
        "block_global=false",  # it would refuse global IPv6 clients too: the addon gates clients
        "connection_strategy=lazy",  # the TLS hello is read before any upstream connection
    ],
)
def test_proxy_arguments_set(setting):
    args = proxy_arguments("127.0.0.1:8080", "regular", Path("/run/sm/current/config.yaml"))
    assert setting in [value for flag, value in zip(args[::2], args[1::2], strict=True) if flag == "--set"]


@pytest.mark.parametrize("listen", ["8080", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000"])
def test_proxy_arguments_refuse_a_listen_address_without_a_port(listen):
    with pytest.raises(ValueError, match="is not host:port"):
        proxy_arguments(listen, "regular", Path("config.yaml"))


# --- dying with the daemon ------------------------------------------------------------------------

ARM = ("import sys; from monitor.proxy.launcher import die_with_parent; "
       "print(die_with_parent(int(sys.argv[1])))")
# A daemon stand-in: starts a child that arms its parent-death signal, prints the child's pid, waits.
PARENT = textwrap.dedent("""
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c",
        "import os, time; from monitor.proxy.launcher import die_with_parent; "
        "assert die_with_parent(os.getppid()); print('armed', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "armed"
    print(child.pid, flush=True)
    child.wait()
""")


@pytest.mark.parametrize(
    ("parent", "still_there"),
    [
        ("mine", "True"),  # this test process started it
        ("init", "False"),  # not its parent: as if the daemon had died before the signal was set
    ],
)
def test_die_with_parent_checks_the_parent_after_arming(parent: str, still_there: str) -> None:
    pid = os.getpid() if parent == "mine" else 1
    result = subprocess.run([sys.executable, "-c", ARM, str(pid)], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == still_there


def test_die_with_parent_in_this_process_sees_its_parent() -> None:
    assert die_with_parent(os.getppid(), signum=0) is True  # signal 0: arms nothing, checks the parent


@pytest.mark.integration
def test_launcher_refuses_to_start_for_a_daemon_that_is_gone() -> None:
    env = dict(os.environ, **{PARENT_PID_ENV: "1"})
    result = subprocess.run([sys.executable, "-m", "monitor.proxy.launcher", "--listen-port", "0"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert "the daemon that started it is gone" in result.stderr


@pytest.mark.integration
def test_child_dies_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)  # runs no code: only the kernel can tell the child
        parent.wait()
        assert wait_until_gone(child, timeout=5)
    finally:
        if parent.poll() is None:
            parent.kill()


# --- the installed wheel ----------------------------------------------------------------------

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])  # where this venv's mitmproxy, scapy ... live


def can_build_wheels() -> bool:
    """`pip wheel --no-build-isolation` needs setuptools' bdist_wheel: setuptools 70.1+, or `wheel`."""
    import importlib.util

    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@dataclass
class Installed:
    venv: Path
    wheel: Path
    env: dict[str, str]  # no PYTHONPATH: nothing may reach the checkout

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def build_wheel(out: Path, tmp: Path) -> Path:
    """The checkout's wheel, offline, built from a copy (an in-tree build leaves `build/` behind,
    whose stale modules a later build would ship)."""
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "monitor", source / "monitor", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(out), str(source)], check=True, timeout=120)
    (wheel,) = out.glob("social_monitor-*.whl")
    return wheel


def make_venv(path: Path, wheel: Path) -> None:
    """A fresh venv with the wheel installed; the project venv's site-packages reachable behind it.

    A venv's `--system-site-packages` reaches the base interpreter's packages, never another
    venv's: the project venv's dependencies (mitmproxy ...) are added with a path in a .pth file.
    Such a directory's own .pth files are not run, so the project's editable install of the
    checkout stays inert, and the wheel comes first on sys.path."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(path)
    purelib = subprocess.run([str(path / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    (Path(purelib) / "project_dependencies.pth").write_text(f"{SITE_PACKAGES}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(path / "bin" / "python"), "install",
                    "--quiet", "--no-deps", "--no-index", str(wheel)], check=True, timeout=120)
    # mitmproxy's console script, as pip writes it for the mitmproxy package
    mitmdump = path / "bin" / "mitmdump"
    mitmdump.write_text(textwrap.dedent(f"""\
        #!{path / "bin" / "python"}
        import sys
        from mitmproxy.tools.main import mitmdump
        sys.exit(mitmdump())
        """))
    mitmdump.chmod(0o755)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    if not can_build_wheels():
        pytest.skip("setuptools cannot build wheels here: install the test extras (they bring `wheel`)")
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(tmp / "dist", tmp)
    make_venv(tmp / "venv", wheel)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PROMETHEUS_MULTIPROC_DIR")}
    env["PATH"] = f"{tmp / 'venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return Installed(tmp / "venv", wheel, env)


@pytest.fixture(scope="module")
def origins(tmp_path_factory) -> Iterator[Origins]:
    with serve_origins(tmp_path_factory.mktemp("certs")) as served:
        yield served


@pytest.mark.integration
def test_wheel_ships_every_module_and_data_file(installed: Installed):
    # (a compiled module built in place for this checkout is a build product, not a source file)
    checkout = {str(p.relative_to(ROOT)) for p in (ROOT / "monitor").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".so", ".c")}
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = {name for name in wheel.namelist() if name.startswith("monitor/")}
    assert checkout - shipped == set()
    assert {"monitor/data/platforms.yaml", "monitor/data/report.html"} <= shipped


@pytest.mark.integration
def test_monitor_imports_from_the_wheel_not_the_checkout(installed: Installed, tmp_path: Path):
    probe = """if True:
        import json, sys, importlib.metadata, monitor, mitmproxy
        print(json.dumps({"monitor": monitor.__file__, "mitmproxy": mitmproxy.__file__, "path": sys.path,
                          "dist": str(importlib.metadata.distribution("social-monitor")._path)}))"""
    out = subprocess.run([installed.bin("python"), "-c", probe], cwd=tmp_path, env=installed.env,
                         capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(out.stdout)
    venv_site = str(installed.venv.resolve())
    assert Path(seen["monitor"]).resolve().is_relative_to(venv_site), seen["monitor"]
    assert Path(seen["dist"]).resolve().is_relative_to(venv_site), seen["dist"]
    assert Path(seen["mitmproxy"]).resolve().is_relative_to(SITE_PACKAGES.resolve())
    # the project venv, with its editable install of a checkout, is on the path yet shadowed
    assert str(SITE_PACKAGES) in seen["path"]
    assert not any((tmp_path / p).resolve() == ROOT for p in seen["path"])  # '' is the child's cwd


PROBE_ADDON = '''\
"""Writes where the running social_monitor addon's code was loaded from."""
import os
import sys
from pathlib import Path

from mitmproxy import ctx


class WhereFrom:
    def running(self) -> None:
        addon = ctx.master.addons.get("socialmonitor")
        Path(os.environ["SM_TEST_PROBE"]).write_text(sys.modules[type(addon).__module__].__file__)


addons = [WhereFrom()]
'''


def commands(installed: Installed, tmp: Path, port: int) -> dict[str, list[str]]:
    config = str(tmp / "config.yaml")
    extra = ["-s", str(tmp / "redirect.py"), "-s", str(tmp / "probe.py"), "--set", f"confdir={tmp / 'mitm'}"]
    return {
        "social-monitor proxy": [installed.bin("social-monitor"), "proxy", "--config", config, "--", *extra],
        "mitmdump -s": [installed.bin("mitmdump"), "-s", str(tmp / "social_monitor.py"), *extra,
                        "--listen-host", "127.0.0.1", "--listen-port", str(port),
                        "--set", "block_global=false", "--set", f"social_monitor_config={config}"],
    }


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.parametrize("launcher", ["social-monitor proxy", "mitmdump -s"])
def test_installed_proxy_records_an_access(installed: Installed, origins: Origins, tmp_path: Path,
                                          launcher: str):
    port = free_port()
    shutil.copy(TEST_CONFIG.parent / "devices.csv", tmp_path / "devices.csv")
    (tmp_path / "config.yaml").write_text(TEST_CONFIG.read_text() + f"listen:\n  proxy: 127.0.0.1:{port}\n")
    shutil.copy(ADDON_PATH, tmp_path / "social_monitor.py")
    shutil.copy(REDIRECT_PATH, tmp_path / "redirect.py")
    (tmp_path / "probe.py").write_text(PROBE_ADDON)
    env = {**installed.env, **origins.env(), "SM_TEST_PROBE": str(tmp_path / "where.txt")}
    with (tmp_path / "proxy.log").open("wb") as log:
        proc = subprocess.Popen(commands(installed, tmp_path, port)[launcher], cwd=tmp_path, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc=proc)
        verify = ssl.create_default_context(cafile=str(origins.ca))  # the origin's CA: TLS passed through
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", verify=verify, timeout=10, trust_env=False) as c:
            assert c.get("https://www.tiktok.com/").text == "hello from www.tiktok.com"
            assert c.get("http://www.tiktok.com/").text == "hello from www.tiktok.com"
    finally:
        proc.send_signal(signal.SIGTERM)  # the addon flushes its store writer on the way out
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    output = (tmp_path / "proxy.log").read_text(errors="replace")
    assert proc.returncode == 0 and "Traceback" not in output, output
    addon_file = Path((tmp_path / "where.txt").read_text()).resolve()
    assert addon_file.is_relative_to(installed.venv.resolve()), addon_file
    with open_store(tmp_path / "store.db", create=False) as store:
        assert [(s.platform, s.observations) for s in store.sessions()] == [("tiktok", 2)], output
