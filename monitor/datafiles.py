"""The package's YAML data (`monitor/data/*.yaml`), read through a compiled JSON copy when it is current.

Every command that classifies or tags reads the platform and bypass catalogs; importing PyYAML and
parsing them costs ~15 ms of a start-up that should take well under 0.3 s. Beside each YAML file
the package ships `<name>.json`: the parsed data and the SHA-256 of the YAML text it came from.
The copy is used only when that digest is the YAML's own, so an edited YAML file is read as YAML
(a stale copy is never trusted); `python -m monitor.datafiles` rewrites the copies, and
tests/test_datafiles.py fails while one is stale.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

COMPILED = ("platforms", "bypass")  # the data files that have a compiled copy


def _data(name: str) -> Any:
    return resources.files("monitor").joinpath("data", name)


def yaml_text(name: str) -> str:
    """The text of `monitor/data/<name>.yaml`."""
    return _data(f"{name}.yaml").read_text("utf-8")


def parse_yaml(text: str) -> Any:
    """YAML text as data: libyaml's safe loader when built in, else PyYAML's own (same result)."""
    import yaml

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load(name: str) -> Any:
    """The data of `monitor/data/<name>.yaml`: from its compiled copy if that was made from this text."""
    text = yaml_text(name)
    try:
        compiled = json.loads(_data(f"{name}.json").read_text("utf-8"))
    except (OSError, ValueError):
        compiled = None
    if isinstance(compiled, dict) and compiled.get("yaml_sha256") == digest(text) and "data" in compiled:
        return compiled["data"]
    return parse_yaml(text)


def compiled_text(name: str) -> str:
    """What `<name>.json` should hold for the YAML file as it is now."""
    text = yaml_text(name)
    data = parse_yaml(text)
    out = json.dumps({"yaml_sha256": digest(text), "data": data}, ensure_ascii=False, separators=(",", ":"))
    if json.loads(out)["data"] != data:  # e.g. a number as a key, a date: JSON would change it
        raise ValueError(f"monitor/data/{name}.yaml holds data JSON cannot carry unchanged")
    return out + "\n"


def main() -> None:
    """Rewrite every compiled copy from its YAML file (after editing one)."""
    for name in COMPILED:
        path = _data(f"{name}.json")
        with resources.as_file(path) as real:
            real.write_text(compiled_text(name), "utf-8")
        print(f"wrote {real}")


if __name__ == "__main__":
    main()
