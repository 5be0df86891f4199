"""Errors that reach the user as one clear line."""


class UserError(Exception):
    """Something the user can fix (bad config, missing file): printed without a traceback."""

    exit_code = 1


class ConfigError(UserError):
    """A configuration problem; `errors` holds one line per problem, each naming file and field."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))
