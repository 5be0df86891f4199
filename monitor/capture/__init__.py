"""The packet sensor: live interfaces and capture files in, `Observation`s out.

One module per stage:

- `sources`: pcap/pcapng files (struct, 4 MB reads) and live interfaces (scapy's
  L2ListenSocket with the kernel BPF filter, raw frames, PACKET_STATISTICS drops)
- `bpf`: the kernel pre-filter (drops pure ACKs; keeps all UDP, IPv6, tunnels, VLAN)
- `packets`: Ethernet/802.1Q/PPPoE/SLL/raw IP, IPv4/IPv6 with extension headers,
  IP-in-IP/6in4/GRE, TCP/UDP, decoded from bytes with no object per layer
- `dns`, `tls`, `quic`, `http`, `dhcp`: the parsers, each raising only its own
  ParseError on malformed input
- `flows`: bounded state (one report per flow, signal and name; DNS answers;
  TCP reassembly of ClientHellos), every table capped with an eviction counter
- `counters`: `CaptureCounters`, the interface the sensor counts through (the
  daemon implements it with Prometheus series; this package never imports metrics)
- `sensor`: `Sensor.feed(ts, linktype, frame)`, the hot path that ties them
- `triage`: which frames reach `feed`, decided in place from a few bytes (a pcap block,
  a ring block, a frame); `_triage.pyx` is its compiled twin, built when it can be
- `pcap_feed`, `pcapng_feed`, `ring`: a classic pcap's records, a pcapng's packet blocks and a TPACKET_V3
  ring's blocks, through the triage
- `live`: `LiveCapture`, the sensor on live interfaces in one thread, for the daemon: each
  interface on its own socket, reopened with back-off when it goes down or away
- `links`: what the kernel says of an interface (present, up) and of the default route
"""
