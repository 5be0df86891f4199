"""The weekly export units in deploy/: systemd accepts them, and their command line is one we accept."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import build_parser

from .conftest import REPO

SERVICE = REPO / "deploy" / "social-monitor-export@.service"
TIMER = REPO / "deploy" / "social-monitor-export@.timer"


def exec_start() -> list[str]:
    text = SERVICE.read_text().replace("\\\n", " ")
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    cmd = line.split("=", 1)[1]
    cmd = cmd.replace("%i", "ash-secondary")
    return shlex.split(cmd)


def test_exec_start_parses_as_a_weekly_pseudonymised_export():
    argv = exec_start()
    assert argv[0] == "/opt/social-monitor/.venv/bin/social-monitor"  # as docs/deploy.md installs it
    args = build_parser().parse_args(argv[1:])
    assert args.command == "export" and args.school == "ash-secondary" and args.last_week
    assert not args.identify and args.config == "/etc/social-monitor/config.yaml"
    assert args.out == "/var/lib/social-monitor/exports/ash-secondary/{from}_{to}"
    assert "UMask=0077" in SERVICE.read_text()
    assert "Persistent=true" in TIMER.read_text() and "OnCalendar=Mon" in TIMER.read_text()


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.timeout(90)
def test_systemd_accepts_the_units(tmp_path):
    exe = Path(sys.executable).with_name("social-monitor")
    text = SERVICE.read_text().replace("/opt/social-monitor/.venv/bin/social-monitor", str(exe))
    (tmp_path / SERVICE.name).write_text(text)
    shutil.copy(TIMER, tmp_path / TIMER.name)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "social-monitor-export@ash-secondary.service",
         "social-monitor-export@ash-secondary.timer"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    problems = [x for x in done.stderr.splitlines() if "social-monitor-export@" in x]
    assert done.returncode == 0 and not problems, done.stderr
