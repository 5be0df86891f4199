"""A seeded mutator over config/example.yaml: every variant loads, or fails with ConfigError whose
lines are one line each naming a file; never another exception, a traceback or a hang.

Each variant is loaded in a forked worker under its own timeout, so a hang (as `inventory:
/dev/zero` once did) fails the test instead of stalling the suite.
"""

from __future__ import annotations

import copy
import multiprocessing
import random
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config.loader import load_config
from monitor.errors import ConfigError
from tests.conftest import EXAMPLE

SEED = 15
VARIANTS = 320
PER_VARIANT_TIMEOUT = 10.0  # seconds; a load takes ~30 ms
EXAMPLE_TEXT = EXAMPLE.read_text()
EXAMPLE_DATA = yaml.safe_load(EXAMPLE_TEXT)
CSV_FILES = ("devices.csv", "staff-timetable.csv", "logins.csv")

BAD_VALUES: list[Any] = [
    True, False, "yes", 0, -1, 1.5, 540, None, [], {}, "", "x" * 300, "2026-02-30", "2026-13-01",
    "25:00", "9am", "10.0.0.300/24", "0.0.0.0/0", "::/0", "10.10.10.7/32", 4095, 0, 110, "/dev/zero",
    "/dev/null", ".", "no-such-file.csv", "../../../../etc/shadow", "\x00", "\udcff", "é", [1, [2, [3]]],
]
BAD_LINES = [
    "retention_days: yes", "retention_days: 90", "  start: 9:00", "start: 2026-02-30",
    "      - {name: x, kind: y, pupil_area: true, cidrs: [0.0.0.0/0], vlans: [110]}",
    "inventory: /dev/zero", "staff_timetables: /dev/zero", "logins: .", "&a [*a]", "{", "- ", "\t",
    "schools: !!python/object:os.system", "key: !!binary ====", "<<: *nowhere", "? [a]\n: b",
]


# --- mutations of the parsed document ---------------------------------------------------------


def _containers(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every dict and list in the document, with its path."""
    found: list[tuple[tuple, Any]] = []
    if isinstance(value, dict):
        found.append((path, value))
        for key, item in value.items():
            found += _containers(item, (*path, key))
    elif isinstance(value, list):
        found.append((path, value))
        for index, item in enumerate(value):
            found += _containers(item, (*path, index))
    return found


def _mutate_data(rng: random.Random, data: Any) -> None:
    _, target = rng.choice(_containers(data))
    if not target:
        return
    key = rng.choice(list(target)) if isinstance(target, dict) else rng.randrange(len(target))
    action = rng.choice(["drop", "bad", "swap", "flip", "copy"])
    if action == "drop":
        del target[key]
    elif action == "bad":
        target[key] = copy.deepcopy(rng.choice(BAD_VALUES))
    elif action == "swap":  # another value of the document, of whatever type, in its place
        _, other = rng.choice(_containers(data))
        target[key] = copy.deepcopy(rng.choice(list(other.values()) if isinstance(other, dict) else other)
                                    if other else other)
    elif action == "flip" and isinstance(target[key], bool):
        target[key] = not target[key]
    elif action == "copy" and isinstance(target, list):
        target.append(copy.deepcopy(target[key]))  # a zone, term or period listed twice


# --- mutations of the text ---------------------------------------------------------------------


def _mutate_text(rng: random.Random, text: str) -> str:
    lines = text.splitlines()
    index = rng.randrange(len(lines))
    action = rng.choice(["truncate", "duplicate", "delete", "insert", "unquote", "bytes"])
    if action == "truncate":
        return text[: rng.randrange(len(text))]
    if action == "duplicate":  # the same key twice, or a list item twice
        lines.insert(index, lines[index])
    elif action == "delete":
        del lines[index]
    elif action == "insert":
        indent = len(lines[index]) - len(lines[index].lstrip())
        lines.insert(index, " " * rng.choice([0, indent]) + rng.choice(BAD_LINES))
    elif action == "unquote":  # "09:00" -> 09:00, "4.1" -> 4.1, "2001:db8::1" -> 2001:db8::1
        lines[index] = lines[index].replace('"', "")
    elif action == "bytes":
        position = rng.randrange(len(lines[index]) + 1)
        lines[index] = lines[index][:position] + rng.choice(["\x85", "\t", "*", "&", "!", "%", ":"]) + \
            lines[index][position:]
    return "\n".join(lines) + "\n"


def variant(seed: int) -> tuple[str, dict[str, bytes]]:
    """The YAML text and any damaged CSV files of variant `seed`."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    if rng.random() < 0.5:
        data = copy.deepcopy(EXAMPLE_DATA)
        for _ in range(rng.randint(1, 3)):
            _mutate_data(rng, data)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    else:
        text = EXAMPLE_TEXT
        for _ in range(rng.randint(1, 3)):
            text = _mutate_text(rng, text)
    if rng.random() < 0.15:
        name = rng.choice(CSV_FILES)
        content = (EXAMPLE.parent / name).read_bytes()
        cut = rng.randrange(len(content))
        files[name] = rng.choice([
            content[:cut],
            content[:cut] + b"\xe9" + content[cut:],
            content[:cut] + b"x" * (128 * 1024 + 1) + content[cut:],
            content[:cut] + b'"' + content[cut:],
            content + content.splitlines(keepends=True)[-1],
        ])
    return text, files


# --- the worker: one variant, loaded in a forked process ---------------------------------------


def _load(path: str) -> tuple[str, list[str]]:
    try:
        load_config(Path(path))
    except ConfigError as exc:
        return "error", list(exc.errors)
    except BaseException:  # the finding: anything else escaping load_config
        return "crash", [traceback.format_exc()]
    return "ok", []


def _write(folder: Path, text: str, files: dict[str, bytes]) -> Path:
    folder.mkdir()
    for name in CSV_FILES:
        shutil.copy(EXAMPLE.parent / name, folder / name)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    path = folder / "config.yaml"
    path.write_text(text, "utf-8", errors="surrogateescape")
    return path


def test_variants_are_reproducible():
    assert variant(3) == variant(3)
    assert len({variant(n)[0] for n in range(20)}) >= 18


@pytest.mark.integration  # forks a pool of workers
def test_every_mutated_config_loads_or_fails_in_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # messages then name files as short relative paths
    started = time.monotonic()
    outcomes: dict[str, int] = {"ok": 0, "error": 0}
    problems: list[str] = []
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pending = []
        for n in range(VARIANTS):
            text, files = variant(SEED * 1000 + n)
            path = _write(tmp_path / f"v{n}", text, files)
            pending.append((n, pool.apply_async(_load, (str(path),))))
        for n, result in pending:
            try:
                kind, lines = result.get(timeout=PER_VARIANT_TIMEOUT)
            except multiprocessing.TimeoutError:
                problems.append(f"variant {n}: no answer in {PER_VARIANT_TIMEOUT} s (a hang)")
                continue
            if kind == "crash":
                problems.append(f"variant {n}: {lines[0]}")
                continue
            outcomes[kind] += 1
            for line in lines:
                if not line or "\n" in line or "Traceback" in line:
                    problems.append(f"variant {n}: not one line: {line!r}")
                elif not line.startswith((f"v{n}/", "/dev/", "no-such-file", "../")):
                    problems.append(f"variant {n}: names no file: {line!r}")
    elapsed = time.monotonic() - started
    assert problems == [], "\n".join(problems[:10])
    # the mutator must actually find mistakes, and leave some variants valid
    assert outcomes["error"] > VARIANTS // 2 and outcomes["ok"] > 0, outcomes
    assert elapsed < 60, f"{VARIANTS} variants took {elapsed:.0f} s"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_mutated_variant_can_be_rerun_alone(tmp_path, monkeypatch, seed):
    """When the fuzz test names variant n, this is how to look at it: write it and load it."""
    monkeypatch.chdir(tmp_path)
    text, files = variant(seed)
    path = _write(tmp_path / "v", text, files)
    kind, lines = _load(str(path))
    assert kind in ("ok", "error"), lines
