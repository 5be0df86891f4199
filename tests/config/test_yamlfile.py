"""The strict YAML loader: duplicate keys found with both lines, impossible dates kept as written,
the line of every key and item remembered, alias expansion bounded."""

from __future__ import annotations

import datetime

import pytest

from monitor.config.yamlfile import MAX_EXPANDED_VALUES, expanded_size, parse_yaml, path_to


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # (key, line, first line, path of the mapping holding it)
        ("retention_days: 90\nstore: {}\nretention_days: 30\n", [("retention_days", 3, 1, [])]),
        ("trust:\n  name: a\n  name: b\n", [("name", 3, 2, ["trust"])]),
        ("z:\n  - {a: 1, a: 2}\n", [("a", 2, 2, ["z", 0])]),  # flow mappings too
        ("a: 1\nb: 2\n", []),
        # an explicit key overrides a merged one: that is YAML's own rule, not a duplicate
        ("base: &b {k: 1}\nm:\n  <<: *b\n  k: 2\n", []),
        ("'1': a\n1: b\n", []),  # the text "1" and the number 1 are different keys
    ],
)
def test_duplicate_keys_are_found_with_both_lines(text, expected):
    document = parse_yaml(text)
    found = [(d.key, d.line, d.first_line, path_to(document.data, d.container)) for d in document.duplicates]
    assert found == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("d: 2026-02-30\n", "2026-02-30"),  # no such day: kept as written, for the field to reject
        ("d: 2026-02-28\n", datetime.date(2026, 2, 28)),
        ("d: !!timestamp nonsense\n", "nonsense"),
        ("d: 2026-09-03 25:00:00\n", "2026-09-03 25:00:00"),
    ],
)
def test_impossible_dates_stay_text(text, value):
    assert parse_yaml(text).data == {"d": value}


LINES = """\
trust:
  name: x
schools:
  - id: a
    zones:
      - {name: z, cidrs: [10.0.0.0/8,
                          10.1.0.0/16]}
  - id: b
"""


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("trust",), 1),
        (("trust", "name"), 2),
        (("schools", 1), 8),
        (("schools", 0, "zones", 0, "cidrs", 1), 7),
        (("schools", 0, "zones", 0, "vlans"), 6),  # not written: the deepest part that was
        (("schools", 5, "id"), 3),
        (("nowhere",), None),
    ],
)
def test_line_of_a_field_path(loc, line):
    assert parse_yaml(LINES).line_of(loc) == line


def test_an_aliased_value_reports_the_line_it_is_written_on():
    document = parse_yaml("a: &day\n  - {name: P1}\nb: *day\n")
    assert document.line_of(("b", 0, "name")) == 2


@pytest.mark.parametrize(
    ("text", "over"),
    [
        ("a: [1, 2, 3]\n", False),
        ("a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
         + "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
                   for p, n in zip("abcdefg", "bcdefgh", strict=True)), True),  # 10^8 values
        ("a: &a [1, *a]\n", True),  # a list that holds itself
    ],
    ids=["small", "billion laughs", "loop"],
)
def test_expanded_size_is_bounded(text, over):
    assert (expanded_size(parse_yaml(text).data) > MAX_EXPANDED_VALUES) is over


def test_expanded_size_counts_every_value():
    # the document, a and its 2 items, b, and twice (the aliased list and its 2 items)
    assert expanded_size(parse_yaml("a: &a [1, 2]\nb: [*a, *a]\n").data) == 1 + 3 + 1 + 2 * 3
