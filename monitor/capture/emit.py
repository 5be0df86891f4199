"""From a decoded frame and the name read in it to an `Observation`.

The sensor's parsers only find names; this is where a name becomes a record: which end of the packet
is the client (a DNS answer or a VPN reply comes from the server), whose MAC is the client's, and the
key the observation lives by in `flows.FlowLives` (a DNS name lives by its own queries, not by the
other names on its socket). Pure functions of the decoded tuple, so each choice is tested by a row.
"""

from __future__ import annotations

from functools import lru_cache

from monitor.capture.flows import flow_key
from monitor.capture.packets import mac_text, packed_ip_text
from monitor.observation import Observation

# A client's address and MAC are in every one of its observations: their text once each, in bounded
# caches (least recently used dropped), whatever the traffic.
_TEXT_CAP = 65536
_ip_text = lru_cache(maxsize=_TEXT_CAP)(packed_ip_text)
_mac_text = lru_cache(maxsize=_TEXT_CAP)(mac_text)


def observation_key(d: tuple, protocol: str, name: str) -> tuple:
    """The key an observation lives by: its flow, and for DNS its name too."""
    key = flow_key(d[0], d[1], d[3], d[2], d[4])
    return (*key, name) if protocol == "dns" else key


def observation_of(ts: float, frame: bytes, d: tuple, from_client: bool, transport: str, protocol: str,
                   name: str, *, obscured_by: str | None = None, obscured: bool = False,
                   attribution: str = "direct") -> Observation:
    """The observation of `name` in the decoded frame `d`, its ends put the client's way round."""
    _p, src, dst, sport, dport, _s, _e, _q, _f, vlan, l2, encapsulation = d
    if from_client:
        client, cport, server, sport_ = src, sport, dst, dport
    else:
        client, cport, server, sport_ = dst, dport, src, sport
    mac = None
    if l2 >= 0 and frame:
        mac = _mac_text(frame[l2 + 6 : l2 + 12] if from_client else frame[l2 : l2 + 6])
    # The sensor passes only the Literals' values (no cast(): four calls a row on the hot path).
    return Observation(
        timestamp=ts, client_ip=_ip_text(client), client_port=cport, server_ip=_ip_text(server),
        server_port=sport_, transport=transport, protocol=protocol,  # type: ignore[arg-type]
        hostname=name, client_mac=mac, attribution=attribution, vlan=vlan,  # type: ignore[arg-type]
        encapsulation=encapsulation,
        obscured=obscured or obscured_by is not None, obscured_by=obscured_by,  # type: ignore[arg-type]
    )
