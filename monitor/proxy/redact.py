"""mitmproxy's own log lines with no path and no query in them: hosts, never what was asked of them.

The proxy runs quiet (`--quiet`: errors only), as the daemon's child does, so
client addresses and server names are not printed per connection. Errors still
are, and a user may ask for more (`-v`, `termlog_verbosity`); whatever the level,
every record mitmproxy prints passes `RedactPaths` first. mitmproxy quotes a
bad request line as a bytes literal (`Bad HTTP request line: b'GET /a?b HTTP/1.1'`)
and names URLs in some messages: both keep their scheme and host at most.
"""

from __future__ import annotations

import logging
import re

REDACTED = "<redacted>"
# a request line or other client bytes, as mitmproxy quotes them: b'...' or b"..."
BYTES_LITERAL = re.compile(r"""\bb(['"])(?:\\.|(?!\1).)*\1""")
# a URL: the scheme and host stay, the path, query and fragment go
URL = re.compile(r"""\b([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s'"?#]*)[/?#][^\s'"]*""")
# a bare path (not "HTTP/1.1", not "10.0.0.0/8": a slash after a word character is not a path)
PATH = re.compile(r"""(?<![\w.:/<])/[^\s'"]*""")
# a query or fragment left after a host name: "example.org?q=1"
QUERY = re.compile(r"""(?<=[\w\]])[?#][^\s'"]*""")


def redact(text: str) -> str:
    """`text` with request lines, URL paths, bare paths and queries replaced by <redacted>."""
    text = BYTES_LITERAL.sub(REDACTED, text)
    text = URL.sub(lambda m: f"{m.group(1)}/{REDACTED}", text)
    text = PATH.sub(REDACTED, text)
    return QUERY.sub(REDACTED, text)


class RedactPaths(logging.Filter):
    """On mitmproxy's handlers: every record's message (and traceback text) redacted before printing."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of `logger` (the root: where mitmproxy's TermLog prints)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactPaths) for f in handler.filters):
            handler.addFilter(RedactPaths())


__all__ = ["REDACTED", "RedactPaths", "install", "redact"]
