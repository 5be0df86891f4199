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
        ("Type", "notify"),
        ("WatchdogSec", "30s"),
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
        ("StateDirectoryMode", "0700"),
        ("RuntimeDirectory", "social-monitor"),
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
    assert settings[("Unit", "StartLimitIntervalSec")] == "0"  # keeps restarting, however long it takes


def _verifiable_copy(tmp_path: Path, text: str) -> Path:
    """The unit with ExecStart pointed at a binary that exists here: verify checks that it is executable."""
    copy = tmp_path / "social-monitor.service"
    copy.write_text(re.sub(r"(?m)^ExecStart=\S+", "ExecStart=/bin/true", text))
    return copy


@pytest.mark.integration
def test_unit_verifies_clean(tmp_path: Path) -> None:
    tool = _tool("systemd-analyze")
    result = _run(tool, "verify", "--man=no", _verifiable_copy(tmp_path, UNIT.read_text()))
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings (exit 0): clean means no output at all.
    assert result.stderr.strip() == "" and result.stdout.strip() == ""


@pytest.mark.integration
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("ProtectSystem=strict", "ProtectSystem=stricter"),  # a bad value
        ("RestartSec=5", "RestartSecs=5"),  # a misspelt key
        ("Type=notify", "Type=sometimes"),
        ("WatchdogSec=30s", "WatchdogSec=soon"),
    ],
)
def test_unit_verify_catches_a_broken_copy(tmp_path: Path, old: str, new: str) -> None:
    tool = _tool("systemd-analyze")
    text = UNIT.read_text()
    assert old in text
    result = _run(tool, "verify", "--man=no", _verifiable_copy(tmp_path, text.replace(old, new)))
    assert result.stderr.strip() != ""


@pytest.mark.integration
def test_unit_exposure_is_low_and_the_check_can_fail(tmp_path: Path) -> None:
    """`systemd-analyze security` scores sandboxing 0 (locked down) to 10 (none); ours must stay at 2.2
    or below (the threshold is in tenths)."""
    tool = _tool("systemd-analyze")
    hardened = _verifiable_copy(tmp_path, UNIT.read_text())
    result = _run(tool, "security", "--offline=yes", "--threshold=22", hardened)
    assert result.returncode == 0, result.stdout[-2000:]
    bare = tmp_path / "bare" / "social-monitor.service"
    bare.parent.mkdir()
    bare.write_text("[Service]\nExecStart=/bin/true\n")
    assert _run(tool, "security", "--offline=yes", "--threshold=22", bare).returncode != 0


@pytest.mark.integration
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
    assert (state.stat().st_uid, state.stat().st_gid, state.stat().st_mode & 0o777) == (uid, gid, 0o700)
    assert (etc.stat().st_uid, etc.stat().st_gid, etc.stat().st_mode & 0o777) == (0, gid, 0o750)


@pytest.mark.integration
def test_tmpfiles_fails_without_the_user(tmp_path: Path) -> None:
    """The pair above depends on sysusers running first: tmpfiles alone cannot resolve the user."""
    tmpfiles = _tool("systemd-tmpfiles")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    assert _run(tmpfiles, f"--root={root}", "--create", TMPFILES).returncode != 0


# --- Prometheus ------------------------------------------------------------------------------------------

PROM = DEPLOY / "prometheus"
RULES = PROM / "social-monitor.rules.yml"
RULES_TEST = PROM / "social-monitor.rules.test.yml"
SCRAPE = PROM / "scrape.yml"
SPIKE_TEST = "SocialMonitorFlaggedAccessSpike"


def _exposed_metrics() -> dict[str, set[str]]:
    """Every sample name the daemon's Metrics can expose (with _total, _bucket... suffixes) -> its labels."""
    from monitor.metrics.registry import Metrics
    from monitor.store.postgres.shipper import ShipMetrics

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    names: dict[str, set[str]] = {}
    metrics = Metrics()
    ShipMetrics(metrics.registry)  # the daemon adds these when store.central is set
    for collector in set(metrics.registry._collector_to_names):
        labels = set(collector._labelnames)
        for suffix in suffixes[collector._type]:
            names[collector._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    names["social_monitor_build_info"] |= {"version"}  # Info's labels are its keys
    return names


def test_exposed_metrics_include_the_contract() -> None:
    """Guards the helper the name checks rely on: suffixed names and labels come through."""
    names = _exposed_metrics()
    assert names["social_monitor_accesses_total"] == {"school", "zone", "platform", "period_kind", "flagged"}
    assert "le" in names["social_monitor_store_write_latency_seconds_bucket"]
    assert names["social_monitor_ship_lag_seconds"] == set()
    assert "social_monitor_build_info" in names
    assert "social_monitor_kernel_dropped_packets" in names


# Identifiers in PromQL that are not metric names.
_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
    "inf", "nan", "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values",
}  # fmt: skip
_SELECTOR = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?")


def _selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) for each series selector in a PromQL expression."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings cannot hide a name
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # [5m], [7d:1h]
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr)
    found = []
    for m in _SELECTOR.finditer(expr):
        name, matchers = m.group(1), m.group(2) or ""
        rest = expr[m.end() :].lstrip()
        if name in _PROMQL_WORDS or (rest.startswith("(") and not matchers):
            continue  # a keyword or a function call
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
        found.append((name, labels))
    return found


def _recorded_names() -> set[str]:
    import yaml

    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["record"] for g in groups for r in g["rules"] if "record" in r}


def _check_selectors(expr: str, known: dict[str, set[str]]) -> list[str]:
    """Unknown metric names, matchers on labels a metric lacks, and grouping by labels none has."""
    problems = []
    available = {"job", "instance", "__name__"}
    for name, labels in _selectors(expr):
        if name not in known:
            problems.append(f"unknown metric {name!r}")
            continue
        available |= known[name]
        extra = labels - known[name] - {"job", "instance", "__name__"}
        if extra:
            problems.append(f"{name} has no label(s) {sorted(extra)}")
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        missing = {g.strip() for g in group.split(",") if g.strip()} - available
        if missing:
            problems.append(f"grouping by label(s) no metric has: {sorted(missing)}")
    return problems


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ('sum by (school) (rate(social_monitor_accesses_total{zone=~"$zone"}[5m]))', None),
        ("rate(social_monitor_accesses[5m])", "unknown metric 'social_monitor_accesses'"),
        ("social_monitor_store_queue_depth{reason='x'}", "has no label(s) ['reason']"),
        ("histogram_quantile(0.99, rate(social_monitor_store_write_latency_seconds_bucket[5m]))", None),
        ("increase(social_monitor_kernel_drops[10m]) > 0", "unknown metric 'social_monitor_kernel_drops'"),
        ("sum by (zone) (rate(social_monitor_flagged_accesses_total[5m]))", "grouping by label(s) no metric"),
    ],
)
def test_selector_check_catches_wrong_names_and_labels(expr: str, problem: str | None) -> None:
    known = {**_exposed_metrics(), "up": set()}
    problems = _check_selectors(expr, known)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def _rule_exprs() -> list[tuple[str, str]]:
    import yaml

    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(r.get("alert") or r["record"], r["expr"]) for g in groups for r in g["rules"]]


@pytest.mark.parametrize(("name", "expr"), _rule_exprs(), ids=[n for n, _ in _rule_exprs()])
def test_rules_use_only_metrics_the_daemon_exposes(name: str, expr: str) -> None:
    known = {**_exposed_metrics(), "up": set()}
    known |= {rec: {"school"} for rec in _recorded_names()}
    assert _check_selectors(expr, known) == []


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    import yaml

    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} >= {
        "SocialMonitorDown", "SocialMonitorSensorNotRunning", "SocialMonitorKernelDrops",
        "SocialMonitorStoreWriteErrors", "SocialMonitorStoreQueueDropping", "SocialMonitorConfigReloadFailed",
        "SocialMonitorChildRestarting", "SocialMonitorFlaggedAccessSpike", "SocialMonitorCaptureLoss",
        "SocialMonitorUnmonitored",
    }  # fmt: skip
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, alert["alert"]
        assert {"summary", "description", "runbook"} <= set(alert["annotations"]), alert["alert"]


@pytest.mark.integration
def test_promtool_check_rules() -> None:
    result = _run(_tool("promtool"), "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_promtool_check_rules_fails_on_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / RULES.name
    broken.write_text(RULES.read_text().replace("== 0", "=== 0", 1))
    assert _run(_tool("promtool"), "check", "rules", broken).returncode != 0


@pytest.mark.integration
def test_promtool_unit_tests_pass() -> None:
    result = _run(_tool("promtool"), "test", "rules", RULES_TEST, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr


def _mutated_suite(tmp_path: Path, old: str, new: str, keep_spike: bool) -> Path:
    """The rules with one change, and the unit tests (without the slow spike test unless it is needed)."""
    import yaml

    text = RULES.read_text()
    assert text.count(old) == 1, old
    (tmp_path / RULES.name).write_text(text.replace(old, new))
    suite = yaml.safe_load(RULES_TEST.read_text())
    if not keep_spike:
        suite["tests"] = [t for t in suite["tests"] if t["name"] != SPIKE_TEST]
    path = tmp_path / RULES_TEST.name
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


# (id, text in the rules, replacement): each weakens or widens one alert.
MUTATIONS = [
    ("down-for", '.*"} == 0\n        for: 5m', '.*"} == 0\n        for: 9m'),
    ("sensor", '{component="sensor"} == 0', '{component="sensor"} == 1'),
    ("interface-for", "capture_up == 0\n        for: 2m", "capture_up == 0\n        for: 9m"),
    ("interface-any", "social_monitor_capture_up == 0", "social_monitor_capture_up{interface=\"eth1\"} == 0"),
    ("flapping", "capture_outages_total[1h])) > 2.5", "capture_outages_total[1h])) > 5.5"),
    ("drops-delta", "(increase(social_monitor_kernel_dropped", "(delta(social_monitor_kernel_dropped"),
    ("parse-ratio", "          ) > 0.01\n", "          ) > 0.05\n"),
    ("errors-born", "_store_write_errors_total offset 10m", "_store_write_errors_total"),
    ("dropped", "store_queue_dropped_total[10m])) > 0", "store_queue_dropped_total[10m])) > 500"),
    ("backlog-for", "queue_depth > 5000\n        for: 10m", "queue_depth > 5000\n        for: 1m"),
    ("reload-result", 'config_reloads_total{result="failure"}[15m])) > 0', "config_reloads_total[15m])) > 0"),
    ("restarts", "child_restarts_total[15m])) > 2.5", "child_restarts_total[15m])) > 1.5"),
    ("ship-lag-for", "lag_seconds > 3600\n        for: 15m", "lag_seconds > 3600\n        for: 1m"),
    ("ship-lag-level", "ship_lag_seconds > 3600", "ship_lag_seconds > 5000"),
    ("loss-level", "rate(social_monitor_packets_total[5m])))\n            > 0.01",
     "rate(social_monitor_packets_total[5m])))\n            > 0.05"),
    ("loss-for", "            > 0.01\n        for: 10m", "            > 0.01\n        for: 30m"),
    ("unmonitored-for", "school_observed) == 1\n        for: 15m", "school_observed) == 1\n        for: 45m"),
    ("unmonitored-day", "last_over_time(social_monitor_school_day[1h])) == 1",
     "last_over_time(social_monitor_school_day[1h])) >= 0"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("old", "new"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_unit_tests_catch_a_changed_rule(tmp_path: Path, old: str, new: str) -> None:
    """Mutation check: each alert's tests fail when its rule is weakened or widened."""
    result = _run(_tool("promtool"), "test", "rules", _mutated_suite(tmp_path, old, new, keep_spike=False))
    assert result.returncode != 0, f"tests still pass with {new!r}"


@pytest.mark.integration
def test_unit_tests_catch_a_flat_mean_spike_baseline(tmp_path: Path) -> None:
    """The naive baseline (all hours of the week, zeros included) alerts on an ordinary busy school."""
    old = "quantile_over_time(0.5, (school:social_monitor_flagged_accesses:increase1h > 0)[7d:1h] offset 1h)"
    new = "avg_over_time(school:social_monitor_flagged_accesses:increase1h[7d:1h] offset 1h)"
    suite = _mutated_suite(tmp_path, old, new, keep_spike=True)
    result = _run(_tool("promtool"), "test", "rules", suite, timeout=240)
    assert result.returncode != 0
    assert "ash-secondary" in result.stdout + result.stderr


@pytest.mark.integration
def test_promtool_check_config_with_the_scrape_snippet(tmp_path: Path) -> None:
    import yaml

    snippet = yaml.safe_load(SCRAPE.read_text())
    jobs = snippet["scrape_configs"]
    assert all(job["job_name"].startswith("social-monitor") for job in jobs)  # SocialMonitorDown's matcher
    remote = next(job for job in jobs if job.get("scheme") == "https")
    assert remote["basic_auth"]["password_file"] and remote["tls_config"]["ca_file"]

    def config(jobs: list[dict]) -> Path:
        path = tmp_path / "prometheus.yml"
        body = {"global": {"scrape_interval": "30s"}, "rule_files": [str(RULES)], "scrape_configs": jobs}
        path.write_text(yaml.safe_dump(body))
        return path

    result = _run(_tool("promtool"), "check", "config", config(jobs))
    assert result.returncode == 0, result.stdout + result.stderr
    # The check can fail: a timeout longer than the interval is rejected.
    broken = [{**jobs[0], "scrape_timeout": "5m"}, *jobs[1:]]
    assert _run(_tool("promtool"), "check", "config", config(broken)).returncode != 0


# --- Grafana ----------------------------------------------------------------------------------------------

DASHBOARD = DEPLOY / "grafana" / "social-monitor-dashboard.json"
_GRAFANA_RANGES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1d"}


def _dashboard() -> dict:
    import json

    return json.loads(DASHBOARD.read_text())


def _all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_all_panels(panel.get("panels", [])))
    return out


def _targets() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel."""
    panels = _all_panels(_dashboard()["panels"])
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def _as_promql(expr: str) -> str:
    """A Grafana query as plain PromQL: range macros become durations, variables match anything."""
    for macro, value in _GRAFANA_RANGES.items():
        expr = expr.replace(macro, value)
    return re.sub(r"\$\{?\w+(?::\w+)?\}?", ".*", expr)


def test_dashboard_shape() -> None:
    dash = _dashboard()
    assert dash["schemaVersion"] >= 36
    assert dash["uid"] == "social-monitor"
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    for name in ("school", "zone"):
        assert variables[name]["query"]["query"].startswith("label_values(social_monitor_accesses_total")
        assert variables[name]["query"]["query"].rstrip(")").endswith(name)
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"


def test_dashboard_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    panels = _all_panels(_dashboard()["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine


def test_dashboard_queries_use_the_prometheus_input() -> None:
    for panel in _all_panels(_dashboard()["panels"]):
        if panel["type"] == "row":
            continue
        sources = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
        assert all(s == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"} for s in sources), panel["title"]


TARGET_IDS = [f"{t}-{i}" for i, (t, _) in enumerate(_targets())]


@pytest.mark.parametrize(("title", "expr"), _targets(), ids=TARGET_IDS)
def test_dashboard_queries_use_only_metrics_the_daemon_exposes(title: str, expr: str) -> None:
    known = {**_exposed_metrics(), **{rec: {"school"} for rec in _recorded_names()}}
    assert _selectors(_as_promql(expr)), f"{title}: no metric in {expr!r}"
    assert _check_selectors(_as_promql(expr), known) == []


@pytest.mark.parametrize(
    ("metric", "label"),
    [
        ("social_monitor_accesses_total", "platform"),
        ("social_monitor_accesses_total", "zone"),
        ("social_monitor_accesses_total", "period_kind"),
        ("social_monitor_flagged_accesses_total", "flag"),
        ("social_monitor_kernel_dropped_packets", None),
        ("social_monitor_parse_errors_total", "protocol"),
        ("social_monitor_store_write_errors_total", None),
        ("social_monitor_store_queue_depth", None),
        ("social_monitor_store_write_latency_seconds_bucket", None),
        ("social_monitor_config_reloads_total", "result"),
        ("social_monitor_child_restarts_total", "child"),
        ("social_monitor_component_up", None),
        ("social_monitor_capture_up", None),  # one stat per series: instance and interface
        ("social_monitor_capture_outages_total", "interface"),
    ],
)
def test_dashboard_has_the_panels_asked_for(metric: str, label: str | None) -> None:
    """Each asked-for view exists: a query on the metric, grouped by the label where one is named."""
    exprs = [e for _, e in _targets() if re.search(rf"\b{metric}\b", e)]
    assert exprs, metric
    if label:
        assert any(re.search(rf"by \([^)]*\b{label}\b", e) for e in exprs), (metric, label)


def _promtool_check_exprs(tmp_path: Path, exprs: list[str]) -> subprocess.CompletedProcess[str]:
    """promtool parses every expression, as recording rules in a scratch file."""
    import yaml

    rules = [{"record": f"dashboard:query_{i}", "expr": _as_promql(e)} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard-queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return _run(_tool("promtool"), "check", "rules", path)


@pytest.mark.integration
def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    result = _promtool_check_exprs(tmp_path, [e for _, e in _targets()])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_dashboard_query_check_can_fail(tmp_path: Path) -> None:
    broken = "sum by (platform (rate(social_monitor_accesses_total[$__rate_interval]))"
    assert _promtool_check_exprs(tmp_path, [broken]).returncode != 0


# --- docs/deploy.md ---------------------------------------------------------------------------------------

# Written by other branches of the same issue: named in the guide before they land here.
_OTHER_BRANCHES = {
    "deploy/nftables-transparent-proxy.nft",
    "deploy/sysctl-social-monitor.conf",
    "deploy/social-monitor-export@.service",
    "deploy/social-monitor-export@.timer",
}


def test_install_guide_names_files_that_exist() -> None:
    text = (REPO / "docs" / "deploy.md").read_text()
    named = set(re.findall(r"\bdeploy/[\w@./-]*\w", text))
    assert {"deploy/social-monitor.service", "deploy/prometheus/scrape.yml"} <= named
    missing = {p for p in named - _OTHER_BRANCHES if not (REPO / p).exists()}
    assert not missing
    for unit in ("social-monitor.service", "sysusers-social-monitor.conf", "tmpfiles-social-monitor.conf"):
        assert f"deploy/{unit}" in named  # every install step has its file
