"""How config errors read: one line naming the file, the field path and the bad value.

Shared by the readers (CSV rows validated as models) and the loader (the YAML
file), so every message has the same shape, e.g.
``config/example.yaml: schools[0].zones[2].cidrs[0]: '10.0.0.300/24' is not a network``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic_core import ErrorDetails


def shown_path(path: Path) -> str:
    """The path as the user should read it: relative to the working directory when inside it,
    unless that is the root (after `cd /`, "etc/social-monitor/config.yaml" misleads)."""
    cwd = Path.cwd().resolve()
    if cwd == Path(cwd.anchor):
        return str(path)
    try:
        return str(path.resolve().relative_to(cwd))
    except ValueError:
        return str(path)


def format_loc(loc: Iterable[Any]) -> str:
    """pydantic's location tuple as a field path: ('schools', 0, 'zones') -> schools[0].zones."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("function-"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


# strict types (see monitor.config.models.Strict): what YAML gave, and what was wanted
STRICT_TYPES = {
    "bool_type": "true or false",
    "int_type": "a whole number",
    "string_type": "text",
    "float_type": "a number",
}


def _what_yaml_gave(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (YAML reads an unquoted yes/no/on/off as true/false)"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"a {type(value).__name__}"


LOC_PART_RE = re.compile(r"\[(\d+)\]|\.?([^.\[\]:]+)")


def parse_loc(text: str) -> tuple[str | int, ...]:
    """A field path back into its parts: 'schools[1].zones[3]' -> ('schools', 1, 'zones', 3)."""
    return tuple(int(index) if index else name for index, name in LOC_PART_RE.findall(text))


def validation_message(error: ErrorDetails | dict[str, Any]) -> str:
    """One pydantic error as 'path: message', with the bad value where it helps."""
    loc = format_loc(error["loc"])
    kind = error["type"]
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
        # list validators report the index inside the message: move it to the path
        match = re.match(r"^\[(\d+)\] (.*)$", message, re.S)
        if match:
            loc += f"[{match.group(1)}]"
            message = match.group(2)
        return f"{loc}: {message}" if loc else message
    if kind == "extra_forbidden":
        return f"{loc}: unknown key (check the spelling; unknown keys are not ignored)"
    if kind == "missing":
        return f"{loc}: required field is missing"
    value = error.get("input")
    if kind in STRICT_TYPES:
        hint = ": write it in quotes" if kind == "string_type" and isinstance(value, (int, float)) else ""
        return f"{loc}: is {_what_yaml_gave(value)}, not {STRICT_TYPES[kind]}{hint}"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f"{loc}: {value!r} is not valid: {message}"
    return f"{loc}: {message}"
