#!/usr/bin/env python3
"""Our ClientHello parser beside mitmproxy.tls.ClientHello, on the real ClientHellos of the shared captures.

  .venv/bin/python bench/tls_parse_bench.py
"""

from __future__ import annotations

import contextlib
import timeit
from pathlib import Path

from mitmproxy.tls import ClientHello

from monitor.capture.packets import decode
from monitor.capture.sources import read_frames
from monitor.capture.tls import NeedMore, TLSParseError, client_hello_from_records, parse_client_hello

ROOT = Path(__file__).resolve().parents[1]


def real_hellos() -> list[bytes]:
    out = []
    for path in sorted((ROOT.parent / "shared" / "pcaps").glob("*.pcap*")):
        for _ts, linktype, frame in read_frames(path):
            d = decode(linktype, frame)
            if d and d[0] == 6 and frame[d[5] : d[5] + 2] == b"\x16\x03":
                with contextlib.suppress(NeedMore, TLSParseError):
                    out.append(client_hello_from_records(frame[d[5] : d[6]]))
    return out


def main() -> None:
    hellos = real_hellos()
    ours = timeit.timeit(lambda: [parse_client_hello(h) for h in hellos], number=20) / (20 * len(hellos))
    theirs = timeit.timeit(lambda: [ClientHello(h[4:]).sni for h in hellos], number=20) / (20 * len(hellos))
    assert [parse_client_hello(h).server_name for h in hellos] == [ClientHello(h[4:]).sni for h in hellos]
    print(f"{len(hellos)} real ClientHellos: ours {ours * 1e6:.1f} us, mitmproxy {theirs * 1e6:.1f} us "
          f"({theirs / ours:.1f}x), same server names")


if __name__ == "__main__":
    main()
