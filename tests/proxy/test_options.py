"""The addon's mitmproxy options: declared with their defaults and help, and read into ProxySettings."""

from __future__ import annotations

import pytest
from mitmproxy.test import taddons

from monitor.proxy import options
from monitor.proxy.options import OPTIONS, PIPELINE_OPTIONS, ProxySettings, declare_options


class Declares:
    """A bare addon that only declares the options, as SocialMonitor.load does."""

    def load(self, loader) -> None:
        declare_options(loader)


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("social_monitor_config", ""),
        ("social_monitor_decrypt", []),
        ("social_monitor_store", True),
        ("social_monitor_metrics", ""),
        ("social_monitor_events_jsonl", ""),
    ],
)
def test_each_option_is_declared_with_its_default(name, default):
    with taddons.context(Declares()) as tctx:
        assert getattr(tctx.options, name) == default


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("social_monitor_config", "passes every TLS connection through undecrypted"),
        ("social_monitor_decrypt", "needs mitmproxy's CA on the devices"),
        ("social_monitor_store", "bounded queue"),
        ("social_monitor_metrics", "127.0.0.1:9465"),
        ("social_monitor_events_jsonl", "ECS JSON line"),
    ],
)
def test_help_is_one_paragraph_saying_what_the_option_does(name, phrase):
    with taddons.context(Declares()) as tctx:
        help_text = tctx.options._options[name].help
    assert phrase in help_text
    assert "\n" not in help_text and "  " not in help_text  # mitmproxy dedents and joins the lines


@pytest.mark.parametrize("spec", OPTIONS, ids=[spec.name for spec in OPTIONS])
def test_names_carry_the_feature_prefix(spec):
    assert spec.name.startswith("social_monitor_")


@pytest.mark.parametrize(
    ("name", "rebuilds"),
    [
        (options.CONFIG, True),
        (options.DECRYPT, True),
        (options.STORE, True),
        (options.EVENTS_JSONL, True),
        (options.METRICS, False),  # moves the endpoint only
    ],
)
def test_which_options_rebuild_the_pipeline(name, rebuilds):
    assert (name in PIPELINE_OPTIONS) is rebuilds


@pytest.mark.parametrize(
    ("set_options", "settings"),
    [
        ({}, ProxySettings("")),
        ({"social_monitor_config": "/etc/sm.yaml"}, ProxySettings("/etc/sm.yaml")),
        ({"social_monitor_decrypt": ["tiktok", "youtube"]}, ProxySettings("", decrypt=("tiktok", "youtube"))),
        ({"social_monitor_store": False}, ProxySettings("", store=False)),
        ({"social_monitor_events_jsonl": "/tmp/e.jsonl"}, ProxySettings("", events_jsonl="/tmp/e.jsonl")),
        ({"social_monitor_metrics": "127.0.0.1:9"}, ProxySettings("")),  # not a pipeline setting
    ],
)
def test_settings_are_read_from_the_options(set_options, settings):
    with taddons.context(Declares()) as tctx:
        tctx.options.update(**set_options)
        assert ProxySettings.from_options(tctx.options) == settings
