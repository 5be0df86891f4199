"""Every module under monitor/ has its test module at the mirrored path (mitmproxy's filename_matching).

`monitor/<package>/<module>.py` is tested in `tests/<package>/test_<module>.py`, and `monitor/<module>.py`
in `tests/test_<module>.py`; the test module must import the module it is named after (a command module
may instead be driven through `monitor.cli`, the command line it registers on) and hold tests.
Package markers (`__init__.py`, `__main__.py`) need none.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MONITOR = REPO / "monitor"
NOT_MODULES = {"__init__.py", "__main__.py"}


def source_modules() -> list[Path]:
    return sorted(p for p in MONITOR.rglob("*.py") if p.name not in NOT_MODULES)


def mirrored_test(module: Path) -> Path:
    relative = module.relative_to(MONITOR)
    return REPO / "tests" / relative.parent / f"test_{relative.name}"


def dotted(module: Path) -> str:
    return ".".join(module.relative_to(REPO).with_suffix("").parts)


def imported_names(tree: ast.Module) -> set[str]:
    """Every module a test file imports, including `from pkg import mod` as `pkg.mod`."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("module", source_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_has_its_test_module(module: Path):
    test = mirrored_test(module)
    assert test.is_file(), f"{module.relative_to(REPO)} has no test module at {test.relative_to(REPO)}"
    tree = ast.parse(test.read_text(), str(test))
    drivers = {dotted(module)} | ({"monitor.cli"} if module.parent.name == "commands" else set())
    assert drivers & imported_names(tree), f"{test.relative_to(REPO)} does not import {dotted(module)}"
    assert any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test_")
               for n in ast.walk(tree)), f"{test.relative_to(REPO)} holds no test"


def test_the_rule_sees_the_modules():
    """A wrong root would make the parametrized check above pass on nothing."""
    assert len(source_modules()) > 40
    assert mirrored_test(MONITOR / "tagging" / "zones.py") == REPO / "tests" / "tagging" / "test_zones.py"
