"""The privacy notice staff are given, generated from the live config so it cannot drift from it.

Transparency is a condition of lawful monitoring of workers (UK GDPR
articles 13 and 14; the ICO's guidance on monitoring workers): staff must be
told what is recorded, where, when, why, on what lawful basis, for how long,
who can see it and how to exercise their rights. Every fact here is read from
the config that the daemon runs with (zones, timetables, exemptions, special
categories, retention period, lawful basis, DPIA reference and contact) or from
what the software does (`IDENTIFIED_OUTPUTS`, `enforced_retention`,
`dashboard_dimensions`), and tests/exports/test_notice.py checks each claim
against that behaviour, so a notice cannot promise what the software does not
keep. The notice is built as sections of plain text and rendered to Markdown
or HTML, escaping config text in both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape

from monitor.config.loader import Config
from monitor.exports.minimise import MIN_GROUP
from monitor.store.signing import HeadError, public_key_of
from monitor.tagging.policy import Policy

FLAG_WORDS = {
    "contact_time": "during contact time (lessons, registration and duties with pupils)",
    "pupil_area": "in areas where pupils are present (classrooms, halls, library, ...)",
}


# Every command whose output names a device or a person, and the export log entry it leaves (kind):
# the notice's "every identified output is in the export log" is this table, and test_notice runs
# each row and finds its entry. A new command that names people adds its row here.
IDENTIFIED_OUTPUTS: tuple[tuple[str, str, str], ...] = (
    ("export --identify --reason", "export", "an audit export with asset tags and staff ids"),
    ("events --identified --reason", "listing", "a listing of records on the gateway with names"),
    ("sar --staff", "sar", "a subject access request, given to the person it is about"),
    ("classify --config --identified --reason", "listing",
     "tagged accesses read from a capture file, with the device and member of staff the inventory gives "
     "each"),
    ("explain --identified --reason", "listing",
     "one access explained, with the device and member of staff the inventory gives its address"),
)


@dataclass(frozen=True, slots=True)
class Retention:
    """What the software deletes, and after how many days."""

    sessions_days: int  # sessions in the store (store.purge)
    exports_days: int  # export folders in `exports_folder` (monitor.exports.expiry)
    export_log_days: int  # export log entries, then folded into a summary of counts (monitor.exports.logfold)
    exports_folder: str


def enforced_retention(config: Config) -> Retention:
    """The periods the daily purge enforces (`purge` and the daemon run the same three steps): sessions
    after `retention_days`, export folders after `exports.retention_days` (default `retention_days`),
    export log entries after `exports.log_retention_days`, folded into one summary that keeps counts.
    test_notice runs a real purge on each side of each period."""
    from monitor.config.exportsettings import export_retention_days

    model = config.model
    return Retention(model.retention_days, export_retention_days(model.exports, model.retention_days),
                     model.exports.log_retention_days, str(config.exports_folder))


def dashboard_dimensions() -> list[str]:
    """What the dashboard's access counts are broken down by: the labels of the accesses metric."""
    from monitor.metrics.registry import Metrics

    return [name.replace("_", " ") for name in Metrics().accesses._labelnames]


@dataclass(slots=True)
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)


def notice_sections(config: Config) -> list[Section]:
    """The notice's content, in the order staff read it."""
    trust = config.trust
    policy = config.model.policy
    rules = Policy(policy)
    sensitive = list(policy.sensitive_categories)
    catalog = config.catalog
    platforms = sorted((p for p in catalog.platforms.values() if not rules.never_stored(p.category)),
                       key=lambda p: p.name.lower())
    never = {c: sorted(p.name for p in catalog.platforms.values() if p.category == c) for c in sensitive}
    sections = [
        Section("Why the trust monitors", [
            trust.purpose or "No purpose is stated yet: nothing identifiable is stored until it is.",
            "This monitoring is described in clause 8 of the Social Media Policy. It checks that personal "
            "social-media use keeps to clause 4.3: non-contact time, and areas where pupils are not present.",
            f"Lawful basis: {(trust.lawful_basis or 'not yet recorded').rstrip('.')}.",
            f"Data protection impact assessment: {trust.dpia_reference or 'not yet recorded'}.",
            f"Data controller: {trust.data_controller or trust.name}.",
        ]),
        Section("What is recorded", [
            "When a trust-owned device (a laptop, desktop or tablet in the trust's inventory) reaches a "
            "social-media platform, the trust records: the device's asset tag and the staff id it is "
            "assigned "
            "to, the platform and its hostname (for example www.youtube.com), the time, the school, the "
            "network zone and the timetable period.",
            "Where the school's web proxy asks you to sign in, the access is recorded against the person "
            "who signed in (your staff id) rather than the device's assigned owner, so that accesses from "
            "shared computers are attributed to the right person.",
            "It never records the content of what you do: no messages, posts, comments, pages or videos "
            "viewed, web addresses (URLs), searches, passwords or anything typed. Traffic is not decrypted.",
            "Personal devices (anything not in the trust's inventory) are counted anonymously and never "
            "recorded.",
        ], [f"{p.name} ({p.category})" for p in platforms]),
        Section("Categories never recorded", [
            "Accesses to these categories are never stored, not even as a count per person; they are only "
            "counted anonymously for the whole school:",
        ], [f"{c}: {', '.join(names)}" if names else c for c, names in never.items()]),
        _special_section(config, rules),
    ]
    where = Section("Where", [
        "Each school's network is divided into zones. A zone is a pupil area when pupils are present there "
        "during the school day; zones marked not monitored are counted anonymously but never recorded.",
    ])
    for school in config.schools:
        zones = []
        for z in school.zones:
            if not z.monitored:
                zones.append(f"{z.name} ({z.kind}): not monitored, nothing recorded")
            else:
                zones.append(f"{z.name} ({z.kind}): {'pupil area' if z.pupil_area else 'no pupils'}")
        where.bullets.append(f"{school.name}: " + "; ".join(zones))
    sections.append(where)
    flags = [FLAG_WORDS.get(f, f) for f in policy.flags]
    when = Section("When, and what is flagged", [
        "Every access is tagged with the school's timetable period (from the school's timetable and term "
        "dates, with bank holidays and closures). Where the school's timetable system says you have a free "
        "period, that period counts as non-contact time for your devices.",
        "An access is flagged under clause 4.3 when it happens " + " or ".join(flags) + ". A flag is a "
        "prompt for a conversation, not a finding of a breach.",
    ])
    for school in config.schools:
        tt = school.timetable
        when.bullets.append(f"{school.name}: school day {tt.day_start:%H:%M} to {tt.day_end:%H:%M}, "
                            f"{'two-week' if tt.rotation == 'two-week' else 'weekly'} timetable")
    sections.append(when)
    exemptions = Section("Professional use (clause 4.1)", [
        "Some roles use social media as part of the job. These uses are recorded but not flagged:",
    ], [f"{x.name}: {x.reason}" + (f" (clause {x.clause})" if x.clause else "") for x in policy.exemptions])
    if not policy.exemptions:
        exemptions.paragraphs = ["No exemptions are configured: professional use is recorded and may be "
                                 "flagged, and a flag is then discussed with you."]
    sections.append(exemptions)
    sections.append(_retention_section(config))
    sections.append(_who_sees_section())
    contact = trust.contact or trust.data_controller or trust.name
    sections.append(Section("Your rights", [
        "You can ask for a copy of every record held about you and your devices (a subject access "
        f"request, UK GDPR art. 15). Contact: {contact}. The records are searched under your staff id, "
        "every sign-in name recorded for you (with or without the domain, in any case) and the devices "
        "assigned to you; you receive them as a spreadsheet and a data file with a manifest that proves "
        "they are complete and unaltered, with the list of every export and listing that included you, "
        "who made it, when and why.",
        "You can object to this monitoring on grounds relating to your particular situation (art. 21); "
        "the trust must then stop unless it shows compelling legitimate grounds that override your "
        f"interests. Contact: {contact}.",
        "You can ask for inaccurate records to be corrected (art. 16): for example an access attributed "
        "to you that was someone else's. Records are not edited (the store is tamper-evident); the trust "
        "corrects the device inventory or sign-in map that attributed them and keeps your correction with "
        f"your case. Contact: {contact}.",
        "You may also complain to the Information Commissioner's Office (ico.org.uk).",
    ]))
    return sections


def _special_section(config: Config, rules: Policy) -> Section:
    """Categories whose use reveals UK GDPR art. 9 data: counted only, or recorded with the DPIA's reason."""
    catalog = config.catalog.platforms.values()

    def names(category: str) -> str:
        return ", ".join(sorted(p.name for p in catalog if p.category == category)) or "no platform listed"

    section = Section("Special category data (UK GDPR art. 9)")
    counted = sorted(rules.special_categories - rules.sensitive_categories)
    if counted:
        section.paragraphs.append(
            "Using platforms in these categories can reveal special category data (such as political "
            "opinions, religious beliefs, sex life or sexual orientation). Accesses to them are counted "
            "anonymously for the whole school and never recorded against a device or a person:")
        section.bullets += [f"{c}: {names(c)}" for c in counted]
    if rules.recorded_special:
        section.paragraphs.append(
            "The trust records accesses to these special categories, for the reason its impact assessment "
            "gives; such records reveal special category data and are subject to UK GDPR art. 9:")
        section.bullets += [f"{c} (recorded: {why}): {names(c)}"
                            for c, why in sorted(rules.recorded_special.items())]
    if not section.paragraphs:
        section.paragraphs.append("No category is marked as revealing special category data in this "
                                  "configuration.")
    return section


def _retention_section(config: Config) -> Section:
    kept = enforced_retention(config)
    paragraphs = [
        f"Records of accesses are kept for {kept.sessions_days} days and then deleted by the gateway's daily "
        "purge. The record store is tamper-evident (each record is chained to the one before), so records "
        "cannot be edited without it being detected.",
        f"Exports (reports given to principals and investigators) kept by the gateway in "
        f"{kept.exports_folder} are deleted {kept.exports_days} days after they were made, by the same daily "
        "purge, except an investigation's while its case is under legal hold. A copy someone took elsewhere "
        "is theirs to delete: ask the contact below which are held about you.",
        f"The export log, which says who received your data, keeps each entry for {kept.export_log_days} "
        "days; the daily purge then folds older entries into one summary that keeps only counts (how many "
        "exports of each kind, how many sessions, the first and last dates), not whom they included. The "
        "log records whom each output included only as keyed codes, not names.",
        "The monitoring gateway signs its records and every export with its own key. Anyone can check an "
        "export, on any computer, against this public key (social-monitor verify DIR --public-key KEY): "
        f"{_public_key(config)}.",
    ]
    return Section("How long records are kept", paragraphs)


def _who_sees_section() -> Section:
    return Section("Who can see the records", [
        "IT staff see on the monitoring dashboard only counts of accesses by "
        f"{', '.join(dashboard_dimensions())}: never a device, a person or an address.",
        "A listing of records on the gateway (social-monitor events) shows devices and people under aliases "
        "that change with every listing. Names, or a listing of one person or device, are shown only for a "
        "reason given in words, and the listing is entered in the export log.",
        "Principals (clause 6.1) and the Executive Team receive periodic reports in which devices and "
        "people appear under aliases that change with every report. Names of devices and staff ids are "
        "revealed only for a stated reason, such as an investigation under clause 3.3.",
        "In those reports times are to the minute, your own timetable is not shown (only the school's), "
        f"and an exemption that covers fewer than {MIN_GROUP} people is not named. An alias hides your "
        "name, not what you did: someone given reports of overlapping periods, or who knows where and "
        "when you work, may still recognise you, which is why reports go only to those who need them.",
        "Every export, with or without names, and every output that names a device or a person is entered "
        "in an export log before it is given: who made it, when, for which school and dates, the reason "
        "given and whom it included. The log is itself tamper-evident. Outputs that name people:",
    ], [f"{what} (social-monitor {command})" for command, _, what in IDENTIFIED_OUTPUTS])


def _public_key(config: Config) -> str:
    """The gateway's public signing key as the notice prints it (never creates the key)."""
    try:
        key = public_key_of(config.store_path)
    except HeadError:
        key = None
    return key or "not yet created (it is made when the service first starts; ask IT for it then)"


def render_markdown(config: Config) -> str:
    out = [f"# Monitoring of social-media access: privacy notice\n\n**{_md(config.trust.name)}**\n"]
    for s in notice_sections(config):
        out.append(f"## {_md(s.title)}\n")
        out.extend(f"{_md(p)}\n" for p in s.paragraphs)
        if s.bullets:
            out.append("\n".join(f"- {_md(b)}" for b in s.bullets) + "\n")
    out.append("_Generated from the trust's monitoring configuration (fingerprint "
               f"`{config.fingerprint[:16]}`)._\n")
    return "\n".join(out)


def render_html(config: Config) -> str:
    body = ["<h1>Monitoring of social-media access: privacy notice</h1>"
            f"<p><strong>{escape(config.trust.name)}"
            "</strong></p>"]
    for s in notice_sections(config):
        body.append(f"<h2>{escape(s.title)}</h2>")
        body.extend(f"<p>{escape(p)}</p>" for p in s.paragraphs)
        if s.bullets:
            body.append("<ul>" + "".join(f"<li>{escape(b)}</li>" for b in s.bullets) + "</ul>")
    body.append(f"<p><small>Generated from the trust's monitoring configuration (fingerprint "
                f"{escape(config.fingerprint[:16])}).</small></p>")
    return (
        '<!DOCTYPE html>\n<html lang="en-GB"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        'content="default-src \'none\'; style-src \'unsafe-inline\'">'
        "<title>Privacy notice: monitoring of social-media access</title><style>body{font:15px/1.5 system-ui,"
        "Arial,sans-serif;max-width:760px;margin:0 auto;padding:24px}h2{font-size:18px;margin-top:24px}"
        "@media print{body{font-size:11pt}}</style></head><body>" + "".join(body) + "</body></html>\n"
    )


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def _md(text: str) -> str:
    """Config text in Markdown: escape what would change its meaning (links, HTML, emphasis)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def render_notice(config: Config, fmt: str = "md") -> str:
    if fmt == "html":
        return render_html(config)
    return render_markdown(config)


__all__ = [
    "IDENTIFIED_OUTPUTS",
    "Retention",
    "Section",
    "dashboard_dimensions",
    "enforced_retention",
    "notice_sections",
    "render_html",
    "render_markdown",
    "render_notice",
]
