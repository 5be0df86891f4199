"""Multi-process metrics set-up, kept free of prometheus_client imports on purpose.

prometheus-client decides at import time whether values live in memory or in
per-process files, so the daemon must set the directory before anything
imports the client. The daemon and its proxy child then count into the same
directory and the daemon's endpoint sums them.
"""

from __future__ import annotations

import os
import shutil

from monitor.tempdirs import owned_tempdir

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess(parent: str | None = None) -> str | None:
    """Switch prometheus-client to multi-process mode for this process and its children.

    The daemon runs the proxy as a supervised child (mitmdump with the addon);
    both count into files in one directory, and the daemon's endpoint sums
    them (prometheus-client's MultiProcessCollector). It must run before
    prometheus_client is first imported, because the client chooses its value
    storage at import time.

    Returns the directory to remove at exit: one this call made, or None for a
    directory the service manager gave (e.g. systemd's RuntimeDirectory), whose
    stale files from an earlier run are removed instead, as the client's
    documentation asks. A directory this call makes is named after this process, and
    those of earlier daemons that were killed (SIGKILL leaves them) are removed first."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.unlink(os.path.join(given, name))
        return None
    path = str(owned_tempdir("metrics", parent))
    os.environ[MULTIPROC_ENV] = path
    return path


def cleanup_multiprocess(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


