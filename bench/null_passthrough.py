"""Benchmark control: the least an addon can do to pass TLS through from `tls_clienthello`.

Measured beside bare mitmdump and the social_monitor addon, it separates the
cost of mitmproxy's own hook path (TLS layer, hook, pass-through) from the
cost of the addon's work (SNI, observation, tagging, store).
"""

from mitmproxy import tls


class NullPassthrough:
    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        data.ignore_connection = True


addons = [NullPassthrough()]
