"""deploy/: the systemd unit, Prometheus rules and scrape config, the Grafana dashboard.

Every check runs the real tool where one exists (systemd-analyze, systemd-sysusers,
systemd-tmpfiles, promtool) and skips only when the tool is absent. Each tool check
is paired with a deliberately broken copy that must fail, so a check that cannot
fail is caught here rather than in production.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "social-monitor.service"
SYSUSERS = DEPLOY / "sysusers-social-monitor.conf"
TMPFILES = DEPLOY / "tmpfiles-social-monitor.conf"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package: see DEBS in the Makefile)")
    return path


def _run(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    argv = [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


# --- systemd ---------------------------------------------------------------------------------------------


def _unit_settings(text: str) -> dict[tuple[str, str], str]:
    """(section, key) -> value for a unit file (last assignment wins, as in systemd)."""
    settings: dict[tuple[str, str], str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        settings[(section, key.strip())] = value.strip()
    return settings


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("Type", "simple"),
        (
            "ExecStart",
            "/opt/social-monitor/.venv/bin/social-monitor run --config /etc/social-monitor/config.yaml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("User", "social-monitor"),
        ("Group", "social-monitor"),
        ("AmbientCapabilities", "CAP_NET_RAW CAP_NET_ADMIN"),
        ("CapabilityBoundingSet", "CAP_NET_RAW CAP_NET_ADMIN"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/social-monitor"),
        ("StateDirectory", "social-monitor"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX AF_PACKET AF_NETLINK"),
        ("SystemCallFilter", "@system-service"),
        ("Restart", "on-failure"),
        ("RestartSec", "5"),
        ("TimeoutStopSec", "20"),
        ("KillSignal", "SIGTERM"),
    ],
)
def test_unit_sets(key: str, expected: str) -> None:
    assert _unit_settings(UNIT.read_text()).get(("Service", key)) == expected


def test_unit_is_not_dynamic_user_and_writes_only_its_state() -> None:
    settings = _unit_settings(UNIT.read_text())
    assert settings.get(("Service", "DynamicUser"), "no") == "no"
    writable = [v for (sec, k), v in settings.items() if sec == "Service" and k == "ReadWritePaths"]
    assert writable == ["/var/lib/social-monitor"]
    assert ("Install", "WantedBy") in settings


def _verifiable_copy(tmp_path: Path, text: str) -> Path:
    """The unit with ExecStart pointed at a binary that exists here: verify checks that it is executable."""
    copy = tmp_path / "social-monitor.service"
    copy.write_text(re.sub(r"(?m)^ExecStart=\S+", "ExecStart=/bin/true", text))
    return copy


def test_unit_verifies_clean(tmp_path: Path) -> None:
    tool = _tool("systemd-analyze")
    result = _run(tool, "verify", "--man=no", _verifiable_copy(tmp_path, UNIT.read_text()))
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings (exit 0): clean means no output at all.
    assert result.stderr.strip() == "" and result.stdout.strip() == ""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("ProtectSystem=strict", "ProtectSystem=stricter"),  # a bad value
        ("RestartSec=5", "RestartSecs=5"),  # a misspelt key
        ("Type=simple", "Type=sometimes"),
    ],
)
def test_unit_verify_catches_a_broken_copy(tmp_path: Path, old: str, new: str) -> None:
    tool = _tool("systemd-analyze")
    text = UNIT.read_text()
    assert old in text
    result = _run(tool, "verify", "--man=no", _verifiable_copy(tmp_path, text.replace(old, new)))
    assert result.stderr.strip() != ""


def test_unit_exposure_is_low_and_the_check_can_fail(tmp_path: Path) -> None:
    """`systemd-analyze security` scores sandboxing 0 (locked down) to 10 (none); threshold 3.0."""
    tool = _tool("systemd-analyze")
    hardened = _verifiable_copy(tmp_path, UNIT.read_text())
    result = _run(tool, "security", "--offline=yes", "--threshold=30", hardened)
    assert result.returncode == 0, result.stdout[-2000:]
    bare = tmp_path / "bare" / "social-monitor.service"
    bare.parent.mkdir()
    bare.write_text("[Service]\nExecStart=/bin/true\n")
    assert _run(tool, "security", "--offline=yes", "--threshold=30", bare).returncode != 0


@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-tmpfiles chowns, which needs root")
def test_sysusers_and_tmpfiles_create_the_user_and_directories(tmp_path: Path) -> None:
    sysusers, tmpfiles = _tool("systemd-sysusers"), _tool("systemd-tmpfiles")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    result = _run(sysusers, f"--root={root}", SYSUSERS)
    assert result.returncode == 0, result.stderr
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    user = next(line.split(":") for line in passwd if line.startswith("social-monitor:"))
    assert user[5:] == ["/var/lib/social-monitor", "/usr/sbin/nologin"]
    uid, gid = int(user[2]), int(user[3])
    assert uid < 1000  # a system user

    result = _run(tmpfiles, f"--root={root}", "--create", TMPFILES)
    assert result.returncode == 0, result.stderr
    state, etc = root / "var/lib/social-monitor", root / "etc/social-monitor"
    assert (state.stat().st_uid, state.stat().st_gid, state.stat().st_mode & 0o777) == (uid, gid, 0o750)
    assert (etc.stat().st_uid, etc.stat().st_gid, etc.stat().st_mode & 0o777) == (0, gid, 0o750)


def test_tmpfiles_fails_without_the_user(tmp_path: Path) -> None:
    """The pair above depends on sysusers running first: tmpfiles alone cannot resolve the user."""
    tmpfiles = _tool("systemd-tmpfiles")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    assert _run(tmpfiles, f"--root={root}", "--create", TMPFILES).returncode != 0
