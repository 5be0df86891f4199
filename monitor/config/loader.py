"""The trust's configuration: one YAML file and the CSV files it names, loaded and checked.

`load_config` reads the YAML (`readers`), validates it against the models
(`models`), cross-checks the names it uses (`checks`), reads the CSV files and
raises one ConfigError listing every problem, each a line naming the file, the
field path and the bad value (`messages`), e.g.
``config/example.yaml: schools[0].zones[2].cidrs[0]: '10.0.0.300/24' is not a network``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from monitor.capture.bypass import default_catalog as default_bypass_catalog
from monitor.config.checks import (
    LoginRow,
    StaffRow,
    inventory_errors,
    login_errors,
    semantic_errors,
    staff_timetable_errors,
)
from monitor.config.messages import parse_loc, shown_path, validation_message
from monitor.config.models import InventoryDevice, School, StaffPeriod, TrustFile, TrustSettings
from monitor.config.readers import (
    UnreadableFile,
    read_bounded,
    read_inventory,
    read_login_rows,
    read_staff_rows,
    read_yaml_document,
)
from monitor.errors import ConfigError
from monitor.tagging.catalog import Catalog, CatalogError, Platform, default_catalog


class Config:
    """A loaded, checked configuration: the YAML model plus what its files hold."""

    def __init__(
        self,
        path: Path,
        model: TrustFile,
        devices: list[InventoryDevice],
        staff_periods: list[StaffPeriod],
        catalog: Catalog,
        fingerprint: str,
        logins: dict[str, str] | None = None,
    ):
        self.path = path
        self.model = model
        self.devices = devices
        self.staff_periods = staff_periods
        self.catalog = catalog
        self.fingerprint = fingerprint
        self.logins = logins or {}  # lower-cased proxy login -> staff id
        extra = model.bypass
        # the names of resolvers and VPN services: the data file's, and the trust's own additions
        self.bypass_catalog = default_bypass_catalog().extended(
            {"encrypted-dns": extra.encrypted_dns, "vpn": extra.vpn})

    @property
    def trust(self) -> TrustSettings:
        return self.model.trust

    @property
    def schools(self) -> list[School]:
        return self.model.schools

    def school(self, school_id: str) -> School | None:
        return next((s for s in self.model.schools if s.id == school_id), None)

    def resolve(self, relative: str) -> Path:
        """A path from the config, taken relative to the config file's folder (then made canonical)."""
        path = Path(relative)
        return path if path.is_absolute() else (self.path.parent / path).resolve()

    @property
    def store_path(self) -> Path:
        return self.resolve(self.model.store.path)

    @property
    def exports_folder(self) -> Path:
        """Where export folders are kept (and purged): `exports.folder`, else 'exports' beside the store."""
        folder = self.model.exports.folder
        return self.resolve(folder) if folder else self.store_path.parent / "exports"

    def snapshot(self, directory: Path) -> Path:
        """This checked config, frozen in `directory`: the YAML with every path made absolute
        and copies of the CSV files, so a child process started later reads exactly this
        config even after someone has saved a broken edit of the original."""
        import shutil  # here, not at the top: it imports bz2 and lzma, and every command loads a config

        directory.mkdir(parents=True, exist_ok=True)
        data = self.model.model_dump(mode="json")
        for section, key in (("devices", "inventory"), ("devices", "logins"), (None, "staff_timetables")):
            holder = data[section] if section else data
            if holder.get(key):
                copy = directory / f"{key}.csv"
                shutil.copyfile(self.resolve(holder[key]), copy)
                holder[key] = str(copy)
        data["store"]["path"] = str(self.store_path)
        data["exports"]["folder"] = str(self.exports_folder)
        listen = data["listen"]
        for key in ("metrics_tls_cert", "metrics_tls_key", "metrics_tls_client_ca",
                    "metrics_basic_auth_file"):
            if listen.get(key):
                listen[key] = str(self.resolve(listen[key]))
        path = directory / "config.yaml"
        tmp = directory / ".config.yaml.tmp"
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
        tmp.replace(path)
        return path



# Where docs/deploy.md installs the trust's config. Deliberately not overridable: a command
# run anywhere on a gateway must find the gateway's trust, so tests reach this path only
# through a real file there (tests/config/test_loader.py mounts one in a private namespace).
INSTALLED_CONFIG = Path("/etc/social-monitor/config.yaml")
CONFIG_ENV = "SOCIAL_MONITOR_CONFIG"
CHECKOUT_EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


@dataclass(frozen=True)
class ConfigChoice:
    """Which config a command uses and why, said on stderr so no one answers from the wrong trust."""

    path: Path
    source: str  # "given", "env", "installed", "example" or "missing"
    given_by: str = "--config"  # how a given path was given, for the sentence

    @property
    def reason(self) -> str:
        return {
            "given": f"from {self.given_by}",
            "env": f"from ${CONFIG_ENV}",
            "installed": "installed",
            "example": f"the checkout's example: no {INSTALLED_CONFIG}",
            "missing": f"no {INSTALLED_CONFIG} and no checkout's example: give --config",
        }[self.source]

    def line(self) -> str:
        return f"social-monitor: config {self.path} ({self.reason})"


def choose_config(
    given: str | Path | None,
    env: str | None,
    installed_present: bool,
    example_present: bool,
    given_by: str = "--config",
) -> ConfigChoice:
    """The choice order, as a pure function: the command line, else $SOCIAL_MONITOR_CONFIG, else
    the installed config whenever it is there, else the checkout's example, else the installed
    path (whose absence load_config then names)."""
    if given:
        return ConfigChoice(Path(given), "given", given_by)
    if env:
        return ConfigChoice(Path(env), "env")
    if installed_present:
        return ConfigChoice(INSTALLED_CONFIG, "installed")
    if example_present:
        return ConfigChoice(CHECKOUT_EXAMPLE, "example")
    return ConfigChoice(INSTALLED_CONFIG, "missing")


def is_present(path: Path) -> bool:
    """Whether something is at `path`, even if this user may not read it: an installed config
    in a folder closed to us (0750 root:social-monitor) is an error to name, never a reason
    to fall back to the example trust."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def config_choice(given: str | Path | None = None, given_by: str = "--config") -> ConfigChoice:
    """The config this process should use (see `choose_config`), from the environment and disk."""
    return choose_config(given, os.environ.get(CONFIG_ENV), is_present(INSTALLED_CONFIG),
                         CHECKOUT_EXAMPLE.exists(), given_by)


def default_config_path() -> Path:
    """The config used when none is given: see `choose_config`."""
    return config_choice().path


def beside(config_path: Path, relative: str) -> Path:
    """A path named in the config, taken relative to the config file's folder unless absolute."""
    path = Path(relative)
    return path if path.is_absolute() else config_path.parent / path


def once_per_alias(errors: list[str]) -> list[str]:
    """One line per mistake: a value written once under an anchor (`monday: &day`) and reused by
    aliases fails at every path that uses it, on the same line with the same message."""
    kept: dict[tuple[str, str, str], list[str]] = {}
    for error in errors:
        place, _, rest = error.partition(": ")
        path, _, message = rest.partition(": ")
        if not place.count(":") or not message:  # no line, or no field path: nothing to merge
            kept[(error, "", "")] = [error]
            continue
        kept.setdefault((place, path.rpartition(".")[2], message), []).append(error)
    return [group[0] + (f" (and {len(group) - 1} more use(s) of this value through YAML aliases)"
                        if len(group) > 1 else "") for group in kept.values()]


def load_config(path: str | Path | None = None) -> Config:
    """Read, validate and cross-check a trust config; raise ConfigError listing every problem."""
    path = Path(path) if path is not None else default_config_path()
    shown = shown_path(path)
    document = read_yaml_document(path)
    if not isinstance(document.data, dict):
        raise ConfigError([f"{shown}: expected a mapping at the top level"])

    def placed(message: str) -> str:
        """'file:line: path: message', the line found from the message's field path."""
        line = document.line_of(parse_loc(message.partition(": ")[0]))
        return f"{shown}:{line}: {message}" if line else f"{shown}: {message}"

    try:
        model = TrustFile.model_validate(document.data)
    except ValidationError as exc:
        raise ConfigError(once_per_alias([placed(validation_message(e)) for e in exc.errors()])) from None

    base_catalog = default_catalog()
    errors = [
        placed(e)
        for e in semantic_errors(
            model, set(base_catalog.platforms), {p.category for p in base_catalog.platforms.values()}
        )
    ]
    catalog = base_catalog
    if not errors:
        try:
            catalog = base_catalog.restricted(
                only=model.platforms.only,
                exclude=model.platforms.exclude,
                add=[
                    Platform(a.id, a.name, a.category, tuple(a.domains)) for a in model.platforms.add
                ],
                extra_domains=model.platforms.extra_domains,
            )
        except CatalogError as exc:
            errors.append(placed(f"platforms: {exc}"))

    devices, dev_errors = read_inventory(
        beside(path, model.devices.inventory), {s.id for s in model.schools}
    )
    errors += dev_errors
    staff_rows: list[StaffRow] = []
    staff_read_errors: list[str] = []
    if model.staff_timetables:
        staff_rows, staff_read_errors = read_staff_rows(beside(path, model.staff_timetables))
        errors += staff_read_errors
    login_rows: list[LoginRow] = []
    login_read_errors: list[str] = []
    if model.devices.logins:
        login_rows, login_read_errors = read_login_rows(beside(path, model.devices.logins))
        errors += login_read_errors
    if not dev_errors:
        errors += [placed(e) for e in inventory_errors(model, devices)]
        if model.staff_timetables and not staff_read_errors and not login_read_errors:
            errors += staff_timetable_errors(model, devices, login_rows, staff_rows,
                                             shown_path(beside(path, model.staff_timetables)))
        if model.devices.logins and not staff_read_errors and not login_read_errors:
            errors += login_errors(devices, staff_rows, login_rows,
                                   shown_path(beside(path, model.devices.logins)))
    if errors:
        raise ConfigError(errors)
    staff = [period for _, period in staff_rows]
    logins = {login: staff_id for _, login, staff_id in login_rows}

    digest = hashlib.sha256()
    for part in [path, *(beside(path, extra) for extra in filter(None, [
            model.devices.inventory, model.devices.logins, model.staff_timetables]))]:
        try:
            digest.update(read_bounded(part))  # each was read and checked just above
        except UnreadableFile as exc:  # replaced since: say so, as for any other file
            raise ConfigError([f"{shown_path(part)}: cannot read: {exc}"]) from None
    return Config(path, model, devices, staff, catalog, digest.hexdigest(), logins)
