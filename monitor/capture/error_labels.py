"""Which parser a frame that raised was meant for: the `protocol` label of its parse error.

The sensor's hot path does not track which parser it is in; when a hostile frame raises, it is
decoded again here, off the hot path, and labelled by what the sensor would have tried: a fragment
or a tunnel nested too deep, DNS or DHCP by port, any other UDP as QUIC, and TCP as HTTP when it
starts like a request head, else TLS. `packet` when even the headers do not decode.
"""

from __future__ import annotations

from monitor.capture import dhcp, dns, http
from monitor.capture.packets import PROTO_FRAGMENT, PROTO_TOO_DEEP, PROTO_UDP, decode


def parser_meant(linktype: int, frame: bytes) -> str:
    """The parse-error label of a frame that raised (one of the sensor's `error_counts` keys)."""
    try:
        d = decode(linktype, frame)
    except Exception:  # only labelling the error here
        return "packet"
    if d is None:
        return "packet"
    if d[0] == PROTO_FRAGMENT or d[0] == PROTO_TOO_DEEP:
        return "fragment" if d[0] == PROTO_FRAGMENT else "tunnel"
    sport, dport = d[3], d[4]
    if sport in dns.PORTS or dport in dns.PORTS:
        return "dns"
    if sport in dhcp.PORTS and dport in dhcp.PORTS:
        return "dhcp"
    if d[0] == PROTO_UDP:
        return "quic"
    head = frame[d[5] : d[5] + 4]
    return "http" if head in http.METHOD_PREFIXES or http.request_start(frame, d[5], d[6]) else "tls"
