"""The capture package stands alone: it reports through its own interfaces, never into later stages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CAPTURE = Path(__file__).resolve().parents[2] / "monitor" / "capture"
FORBIDDEN = ("monitor.metrics", "monitor.store", "monitor.exports", "monitor.proxy")
MODULES = sorted(CAPTURE.glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (function-level imports too), as absolute names."""
    package = "monitor.capture"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def forbidden_in(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from monitor.metrics.registry import Metrics\n", ["monitor.metrics.registry",
                                                           "monitor.metrics.registry.Metrics"]),
        ("import monitor.store.sqlite\n", ["monitor.store.sqlite"]),
        ("def f():\n    from monitor import exports\n", ["monitor.exports"]),
        ("from ..proxy import addon\n", ["monitor.proxy", "monitor.proxy.addon"]),
        ("from monitor.capture import dns\nimport monitor.observation\n", []),
        ("import monitor.metricsx\n", []),
    ],
    ids=["from-import", "import", "function-level", "relative", "allowed", "prefix-is-not-package"],
)
def test_the_check_sees_every_import_form(tmp_path, source, expected):
    path = tmp_path / "mod.py"
    path.write_text(source)
    assert forbidden_in(imported_modules(path)) == expected


def test_the_package_has_modules_to_check():
    assert {"sensor.py", "live.py", "counters.py"} <= {p.name for p in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_capture_module_does_not_import_a_later_stage(path):
    assert forbidden_in(imported_modules(path)) == []
