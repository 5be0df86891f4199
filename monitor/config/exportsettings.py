"""How long exports and the export log are kept: the `exports:` section of the trust's config.

An export is a copy of personal data, so it does not outlive the store it came
from unless told to: `exports.retention_days` defaults to `retention_days`, and
the daily purge deletes export folders older than that from `exports.folder`.
The export log is what answers "who received my data" (UK GDPR art. 15(1)(c)),
so it is kept longer (`exports.log_retention_days`), then its older entries are
folded into one chained summary (`monitor.exports.logfold`).
"""

from __future__ import annotations

from pydantic import Field

from monitor.config.values import Strict

LOG_RETENTION_DAYS = 2190  # six years: the period within which employment claims can be brought


class ExportSettings(Strict):
    folder: str | None = Field(None, description="Folder the daily purge keeps export folders in (relative "
                               "to the config); default: 'exports' beside the store.")
    retention_days: int | None = Field(None, ge=1, le=3650, description="Days an export folder is kept; "
                                       "default: retention_days.")
    log_retention_days: int = Field(LOG_RETENTION_DAYS, ge=1, le=36500, description="Days export log "
                                    "entries are kept before they are folded into a summary entry.")


def export_retention_days(settings: ExportSettings, retention_days: int) -> int:
    """Days an export folder is kept: its own setting, else the store's."""
    return settings.retention_days if settings.retention_days is not None else retention_days


def retention_errors(exports: ExportSettings, retention_days: int) -> list[str]:
    """The log must outlive what it records: its period is at least the exports' and the store's."""
    kept = export_retention_days(exports, retention_days)
    errors = []
    if exports.log_retention_days < kept:
        what = "exports.retention_days" if exports.retention_days is not None else "retention_days"
        errors.append(f"exports.log_retention_days: {exports.log_retention_days} is shorter than {what} "
                      f"({kept}): the export log must outlive the exports it records")
    if exports.log_retention_days < retention_days and exports.log_retention_days >= kept:
        errors.append(f"exports.log_retention_days: {exports.log_retention_days} is shorter than "
                      f"retention_days ({retention_days}): the export log must outlive the data it "
                      "accounts for")
    return errors


__all__ = ["LOG_RETENTION_DAYS", "ExportSettings", "export_retention_days", "retention_errors"]
