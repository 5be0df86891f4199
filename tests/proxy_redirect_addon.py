"""Test-only mitmproxy addon: send every named upstream to the local test origins on 127.0.0.1.

Lets an end-to-end test reach "www.tiktok.com" without a network: port 443
goes to the local HTTPS origin (`SM_TEST_HTTPS_PORT`), anything else to the
local HTTP origin (`SM_TEST_HTTP_PORT`). With `SM_TEST_BREAK_PIPELINE=1` the
social_monitor addon's pipeline raises on every call, to prove the proxy
fails open.
"""

from __future__ import annotations

import os

from mitmproxy import ctx
from mitmproxy.proxy import server_hooks


class RedirectToLocalOrigin:
    def running(self) -> None:
        if os.environ.get("SM_TEST_BREAK_PIPELINE") == "1":
            monitor = ctx.master.addons.get("socialmonitor")

            def broken(obs):
                raise RuntimeError("pipeline broken on purpose")

            monitor.pipeline.submit = broken

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        port = data.server.address[1]
        https = port == 443
        target = int(os.environ["SM_TEST_HTTPS_PORT" if https else "SM_TEST_HTTP_PORT"])
        data.server.address = ("127.0.0.1", target)


addons = [RedirectToLocalOrigin()]
