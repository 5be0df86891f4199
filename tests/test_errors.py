"""Errors a user can act on: how they are caught, what they say, with which exit code."""

from __future__ import annotations

import pytest

from monitor.errors import ConfigError, UserError


@pytest.mark.parametrize(
    ("error", "text", "exit_code"),
    [
        (UserError("trust.yaml: cannot read"), "trust.yaml: cannot read", 1),
        (ConfigError(["a.yaml: trust.name: missing"]), "a.yaml: trust.name: missing", 1),
        (ConfigError(["a.yaml: x: bad", "a.yaml: y: bad"]), "a.yaml: x: bad\na.yaml: y: bad", 1),
        (ConfigError([]), "", 1),
    ],
    ids=["user-error", "one-config-error", "config-errors-one-per-line", "no-errors"],
)
def test_message_and_exit_code(error, text, exit_code):
    assert (str(error), error.exit_code) == (text, exit_code)


def test_config_error_keeps_each_line():
    assert ConfigError(["x: bad", "y: bad"]).errors == ["x: bad", "y: bad"]


def test_a_config_error_is_caught_as_a_user_error():
    with pytest.raises(UserError):
        raise ConfigError(["x: bad"])
