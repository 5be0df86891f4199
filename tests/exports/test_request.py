"""Export requests: --out placeholders and the reason an identified export needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.exports.request import ExportError, check_identify, expand_out

VALUES = {"school": "oak", "now": "20261126T0900", "from": "2026-11-16", "to": "2026-11-22"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("/x/{school}/{from}_{to}", "/x/oak/2026-11-16_2026-11-22"),
        ("/x/{now}", "/x/20261126T0900"),
        ("/x/plain", "/x/plain"),
    ],
)
def test_expand_out(template, expected):
    assert expand_out(template, **VALUES) == Path(expected)


@pytest.mark.parametrize("template", ["/x/{who}", "/x/{0}", "/x/{school"])
def test_expand_out_refuses_unknown_placeholders(template):
    with pytest.raises(ExportError, match="--out"):
        expand_out(template, **VALUES)


@pytest.mark.parametrize(
    ("identify", "reason", "expected"),
    [
        (False, None, None),
        (False, "  ", None),
        (False, "audit", "audit"),
        (True, " investigation INV-7 ", "investigation INV-7"),
    ],
)
def test_check_identify_returns_the_reason(identify, reason, expected):
    assert check_identify(identify, reason) == expected


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_identify_without_a_reason_is_refused(reason):
    with pytest.raises(ExportError, match="needs --reason"):
        check_identify(True, reason)
