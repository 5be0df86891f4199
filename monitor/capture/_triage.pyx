# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The frame triage of `triage.py`, compiled: the same decisions, the same calls into the sensor.

`triage.py` is the reference and the fallback; this twin reads the deciding bytes
with C loads instead of struct calls, walks pcap records and ring blocks in C, and
touches Python only for what the sensor keeps (flow keys, lives, streams) and for
the frames it hands to `Sensor.feed`. `tests/capture/test_triage.py` runs both on
the same frames and buffers and requires the same observations.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem, PyDict_Size
from cpython.ref cimport PyObject
from libc.string cimport memcmp, memcpy

cdef extern from *:
    """
    static inline unsigned int sm_be16(const unsigned char *p) { return ((unsigned int)p[0] << 8) | p[1]; }
    static inline unsigned int sm_be32(const unsigned char *p) {
        return ((unsigned int)p[0] << 24) | ((unsigned int)p[1] << 16) | ((unsigned int)p[2] << 8) | p[3];
    }
    static inline unsigned int sm_le32(const unsigned char *p) {
        return ((unsigned int)p[3] << 24) | ((unsigned int)p[2] << 16) | ((unsigned int)p[1] << 8) | p[0];
    }
    static inline unsigned int sm_le16(const unsigned char *p) { return ((unsigned int)p[1] << 8) | p[0]; }
    """
    unsigned int sm_be16(const unsigned char *p) nogil
    unsigned int sm_be32(const unsigned char *p) nogil
    unsigned int sm_le32(const unsigned char *p) nogil
    unsigned int sm_le16(const unsigned char *p) nogil

cdef enum:
    ETHERNET = 1
    MAX_METHODS = 64

cdef enum Action:
    FEED = 0
    READ_ON = 1
    QUIET = 2
    QUIET_UNLESS_HELD = 3
    OPEN = 4
    END = 5

# The constants of triage.py, read from it when the first Triage is made (not at import: triage.py
# imports this module at its end, so importing this one first would find it half made).
cdef unsigned int PROTO_TCP, PROTO_UDP, TCP_SYN, TCP_ACK, TCP_END, TCP_OPEN_OR_END, CLIENT_HELLO, SPAN
cdef unsigned int SERVER_HELLO
cdef unsigned int VLAN_VALID
cdef long long MAX_RECORD
cdef double MAX_TIMESTAMP
cdef bint READY = False

# One byte per value: which first bytes and ports matter (the frozensets of triage.py as tables).
cdef unsigned char TCP_FIRST[256]
cdef unsigned char TCHAR[256]
cdef unsigned char BYPASS_FIRST[256]
cdef unsigned char OVPN[256]
cdef unsigned char PORT_SPECIAL[65536]
cdef unsigned char PORT_TUNNEL[65536]
cdef unsigned int METHOD_PREFIXES[MAX_METHODS]  # each 4-byte method prefix, big-endian
cdef int N_METHODS = 0


cdef int _tables() except -1:
    global N_METHODS, READY, PROTO_TCP, PROTO_UDP, TCP_SYN, TCP_ACK, TCP_END, TCP_OPEN_OR_END, CLIENT_HELLO
    global SPAN, VLAN_VALID, MAX_RECORD, MAX_TIMESTAMP, SERVER_HELLO
    from monitor.capture import triage as _py

    cdef int i
    prefixes = sorted(_py.http.METHOD_PREFIXES)
    if len(prefixes) > MAX_METHODS or any(len(p) != 4 for p in prefixes):
        raise ValueError("method prefixes the compiled triage cannot hold: use triage.PureTriage")
    PROTO_TCP, PROTO_UDP, TCP_SYN, TCP_ACK = _py.PROTO_TCP, _py.PROTO_UDP, _py.TCP_SYN, _py.TCP_ACK
    TCP_END, TCP_OPEN_OR_END, CLIENT_HELLO, SPAN = _py.TCP_END, _py.TCP_OPEN_OR_END, _py.CLIENT_HELLO, _py.SPAN
    VLAN_VALID, MAX_RECORD, SERVER_HELLO = _py.TP_STATUS_VLAN_VALID, _py.MAX_RECORD, _py.SERVER_HELLO
    MAX_TIMESTAMP = _py.MAX_TIMESTAMP
    for i in range(256):
        TCP_FIRST[i] = i in _py.TCP_FIRST
        TCHAR[i] = i in _py.TCHARS
        BYPASS_FIRST[i] = i in _py.BYPASS_FIRST
        OVPN[i] = i in _py.OVPN_TCP
    for i in range(65536):
        PORT_SPECIAL[i] = i in _py.SPECIAL_PORTS
        PORT_TUNNEL[i] = i in _py.UDP_TUNNEL_PORTS
    for i, p in enumerate(prefixes):
        METHOD_PREFIXES[i] = (p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]
    N_METHODS = len(prefixes)
    READY = True
    return 0


cdef inline bint _http_start(const unsigned char *p, Py_ssize_t at, Py_ssize_t end, Py_ssize_t stop):
    """A method prefix in the first 4 bytes (to the frame's end), or a method token and a space
    within SPAN bytes (to the IP payload's end): `triage.METHOD_PREFIX` and `REQUEST_START`."""
    cdef unsigned int head
    cdef Py_ssize_t i, limit
    cdef int k
    if end - at >= 4:
        head = sm_be32(p + at)
        for k in range(N_METHODS):
            if METHOD_PREFIXES[k] == head:
                return True
    limit = stop if stop < at + SPAN else at + SPAN
    i = at
    while i < limit and TCHAR[p[i]]:
        i += 1
    return at < i < limit and p[i] == 0x20


cdef class Triage:
    """The triage bound to one sensor (`triage.PureTriage`'s methods, compiled)."""

    cdef readonly object sensor
    cdef object feed, lives, touch, streams, drop_stream, open_stream, end_flow, expire, nameless
    cdef Py_ssize_t skipped  # frames read here without `feed`: added to `sensor.packets` on return
    cdef double next_expiry  # `sensor._next_expiry`, read again after each call that can move it
    # The last frame's addresses, ports and protocol as they lie in it, and the keys made of them: a
    # run of frames of one flow (a download) builds its keys once.
    cdef unsigned char last_raw[40]
    cdef Py_ssize_t last_len
    cdef object flow, stream

    def __init__(self, sensor):
        if not READY:
            _tables()
        self.sensor = sensor
        self.feed = sensor.feed
        self.lives = sensor.flows.lives
        self.touch = sensor.flows.touch
        self.end_flow = sensor.flows.end
        self.streams = sensor.tcp.streams
        self.drop_stream = sensor.tcp.drop
        self.open_stream = sensor.tcp.open
        self.nameless = sensor.nameless.waiting
        self.expire = sensor._expire
        self.last_len = 0

    cdef inline int _begin(self) except -1:
        self.skipped = 0
        self.next_expiry = self.sensor._next_expiry
        return 0

    cdef inline int _end(self) except -1:
        if self.skipped:
            self.sensor.packets += self.skipped
            self.skipped = 0
        return 0

    cdef int _fed(self, double ts, int linktype, object frame) except -1:
        self.feed(ts, linktype, frame)
        self.next_expiry = self.sensor._next_expiry
        return 0

    cdef inline int _keys(self, const unsigned char *p, Py_ssize_t base, Py_ssize_t alen, unsigned int proto,
                          unsigned int sport, unsigned int dport) except -1:
        """`flow` (the flow's key, `flows.flow_key`) and `stream` (src, sport, dst, dport) of the frame
        whose addresses and ports lie at p[base:] (src, dst, then the two ports)."""
        cdef Py_ssize_t n = 2 * alen + 4
        if n == self.last_len and proto == self.last_raw[n] and memcmp(p + base, self.last_raw, n) == 0:
            return 0
        src = PyBytes_FromStringAndSize(<const char *>p + base, alen)
        dst = PyBytes_FromStringAndSize(<const char *>p + base + alen, alen)
        if sport > dport or (sport == dport and src > dst):
            self.flow = (proto, src, sport, dst, dport)
        else:
            self.flow = (proto, dst, dport, src, sport)
        self.stream = (src, sport, dst, dport)
        memcpy(self.last_raw, p + base, n)
        self.last_raw[n] = <unsigned char>proto
        self.last_len = n
        return 0

    def frame(self, double ts, int linktype, buf, Py_ssize_t fp, Py_ssize_t end):
        """The frame buf[fp:end] (bytes, bytearray or mmap) of link type `linktype`."""
        cdef const unsigned char[::1] view = buf
        if not 0 <= fp <= end <= view.shape[0]:
            raise ValueError("frame outside its buffer")
        if end == fp:
            self.feed(ts, linktype, b"")
        elif linktype != ETHERNET:
            self.feed(ts, linktype, PyBytes_FromStringAndSize(<const char *>&view[0] + fp, end - fp))
        else:
            self._begin()
            try:
                self._handle(ts, &view[0], fp, end)
            finally:
                self._end()

    def block(self, ring, Py_ssize_t at, Py_ssize_t count, int linktype, retag):
        """The `count` frames of a TPACKET_V3 block whose first tpacket3_hdr is at ring[at:]."""
        cdef const unsigned char[::1] view = ring
        cdef const unsigned char *p = &view[0]
        cdef Py_ssize_t size = view.shape[0]
        self._begin()
        try:
            self._block(p, size, at, count, linktype, retag)
        finally:
            self._end()

    cdef int _block(self, const unsigned char *p, Py_ssize_t size, Py_ssize_t at, Py_ssize_t count,
                    int linktype, retag) except -1:
        cdef Py_ssize_t i, start, snaplen
        cdef unsigned int next_offset, status, tci, tpid, mac
        cdef double ts
        for i in range(count):
            if at < 0 or at + 48 > size:
                raise ValueError("a ring block's packet header outside the ring")
            next_offset, snaplen = sm_le32(p + at), sm_le32(p + at + 12)
            ts = sm_le32(p + at + 4) + sm_le32(p + at + 8) * 1e-9
            status, mac = sm_le32(p + at + 20), sm_le16(p + at + 24)
            tci, tpid = sm_le32(p + at + 32), sm_le16(p + at + 36)
            start = at + mac
            if start + snaplen > size:
                raise ValueError("a ring frame outside the ring")
            if status & VLAN_VALID or tci:
                self._fed(ts, linktype, retag(PyBytes_FromStringAndSize(<const char *>p + start, snaplen),
                                              status, tci, tpid))
            elif linktype == ETHERNET and snaplen:
                self._handle(ts, p, start, start + snaplen)
            else:
                self._fed(ts, linktype, PyBytes_FromStringAndSize(<const char *>p + start, snaplen))
            at += next_offset
        return 0

    def records(self, bytearray buf, Py_ssize_t pos, Py_ssize_t n, bint big_endian, double tick, int linktype):
        """Every whole pcap record of buf[pos:n]; where the first record not read starts, or -1 at a
        record longer than MAX_RECORD."""
        cdef const unsigned char[::1] view = buf
        cdef const unsigned char *p = &view[0]
        if n > view.shape[0] or pos < 0:
            raise ValueError("records outside their buffer")
        self._begin()
        try:
            return self._records(p, pos, n, big_endian, tick, linktype)
        finally:
            self._end()

    cdef Py_ssize_t _records(self, const unsigned char *p, Py_ssize_t pos, Py_ssize_t n, bint big_endian,
                             double tick, int linktype) except -2:
        cdef Py_ssize_t fp, end, last_header = n - 16
        cdef unsigned int sec, frac, caplen
        cdef double ts
        while pos <= last_header:
            if big_endian:
                sec, frac, caplen = sm_be32(p + pos), sm_be32(p + pos + 4), sm_be32(p + pos + 8)
            else:
                sec, frac, caplen = sm_le32(p + pos), sm_le32(p + pos + 4), sm_le32(p + pos + 8)
            if caplen > MAX_RECORD:
                return -1
            fp = pos + 16
            end = fp + caplen
            if end > n:
                break
            pos = end
            ts = sec + frac * tick
            if linktype == ETHERNET and caplen:
                self._handle(ts, p, fp, end)
            else:
                self._fed(ts, linktype, PyBytes_FromStringAndSize(<const char *>p + fp, caplen))
        return pos

    def packet_blocks(self, bytearray buf, Py_ssize_t pos, Py_ssize_t n, bint big_endian, list interfaces):
        """The run of whole pcapng enhanced packet blocks from buf[pos:n] on; (where the first block not
        read starts, the frames read)."""
        cdef const unsigned char[::1] view = buf
        cdef const unsigned char *p = &view[0]
        if n > view.shape[0] or pos < 0:
            raise ValueError("blocks outside their buffer")
        self._begin()
        try:
            return self._packet_blocks(p, pos, n, big_endian, interfaces)
        finally:
            self._end()

    cdef tuple _packet_blocks(self, const unsigned char *p, Py_ssize_t pos, Py_ssize_t n, bint big_endian,
                              list interfaces):
        cdef Py_ssize_t frames = 0, fp, stop, end
        cdef unsigned int block_type, total, iface, high, low, caplen
        cdef int linktype
        cdef double ts, tick
        cdef Py_ssize_t count = len(interfaces)
        while pos + 32 <= n:
            if big_endian:
                block_type, total, iface = sm_be32(p + pos), sm_be32(p + pos + 4), sm_be32(p + pos + 8)
                high, low, caplen = sm_be32(p + pos + 12), sm_be32(p + pos + 16), sm_be32(p + pos + 20)
            else:
                block_type, total, iface = sm_le32(p + pos), sm_le32(p + pos + 4), sm_le32(p + pos + 8)
                high, low, caplen = sm_le32(p + pos + 12), sm_le32(p + pos + 16), sm_le32(p + pos + 20)
            if block_type != 6 or total < 32 or total > MAX_RECORD or pos + total > n or iface >= count:
                break
            linktype, tick = interfaces[iface]
            ts = (((<unsigned long long>high) << 32) | low) * tick
            if not 0.0 <= ts < MAX_TIMESTAMP:
                break
            fp, stop = pos + 28, pos + total - 4
            end = fp + caplen if caplen < stop - fp else stop
            if linktype == ETHERNET and end > fp:
                self._handle(ts, p, fp, end)
            else:
                self._fed(ts, linktype, PyBytes_FromStringAndSize(<const char *>p + fp, end - fp))
            frames += 1
            pos += total
        return pos, frames

    cdef int _handle(self, double ts, const unsigned char *p, Py_ssize_t fp, Py_ssize_t end) except -1:
        """`triage.frame_handler`'s `handle`, on the Ethernet frame p[fp:end] (at least one byte)."""
        cdef Py_ssize_t caplen = end - fp, ip, stop = 0, l4 = 0, start, at, size
        cdef unsigned int proto = 0, sport = 0, dport = 0, seq = 0, doff = 0, flags = 0, total, first, length
        cdef unsigned int alen = 4
        cdef int action = FEED
        cdef PyObject *life
        cdef object life_obj
        cdef double due, last
        if caplen >= 54:
            ip = fp + 12
            if p[ip] == 0x08:
                if p[ip + 1] == 0x00 and p[ip + 2] == 0x45 and not sm_be16(p + ip + 8) & 0x3FFF:
                    total = sm_be16(p + ip + 4)
                    stop = 14 + total if 20 <= total < caplen - 14 else caplen
                    proto = p[ip + 11]
                    l4 = 34
                    action = READ_ON
            elif p[ip] == 0x86 and caplen >= 74:
                if p[ip + 1] == 0xDD and p[ip + 2] >> 4 == 6:
                    total = sm_be16(p + ip + 6)
                    stop = 54 + total if 0 < total < caplen - 54 else caplen
                    proto = p[ip + 8]
                    l4 = 54
                    alen = 16
                    action = READ_ON
        if action == READ_ON:
            action = FEED
            at = fp + l4
            sport, dport, seq = sm_be16(p + at), sm_be16(p + at + 2), sm_be32(p + at + 4)
            doff, flags = p[at + 12], p[at + 13]
            if proto == PROTO_TCP:
                start = l4 + ((doff >> 4) << 2)
                if doff < 0x50 or stop < start:
                    pass  # a header `decode` refuses
                elif stop == start:
                    if not flags & TCP_OPEN_OR_END:
                        action = QUIET
                    elif not flags & TCP_SYN:
                        action = END
                    elif not flags & TCP_END:
                        action = OPEN
                elif not flags & TCP_OPEN_OR_END:
                    at = fp + start
                    first = p[at]
                    # a TLS record: only a ClientHello is read (`feed` reads its head to the frame's end),
                    # and a ServerHello answering a hello with no name (its certificate: server_cert.py)
                    if first == 0x16 and at + 1 < end and p[at + 1] == 3:
                        if stop - start > 5 and p[at + 5] != CLIENT_HELLO:
                            action = QUIET_UNLESS_HELD
                            if p[at + 5] == SERVER_HELLO and PyDict_Size(self.nameless):
                                self._keys(p, fp + l4 - 2 * alen, alen, proto, sport, dport)
                                s = self.stream
                                if PyDict_GetItem(self.nameless, (s[2], s[3], s[0], s[1])) is not NULL:
                                    action = FEED
                    elif not (
                        first == 0x16 or sport == 53 or dport == 53
                        or (TCP_FIRST[first] and _http_start(p, at, end, fp + stop))
                        or (stop - start > 15 and OVPN[p[at + 2]])
                    ):
                        action = QUIET_UNLESS_HELD
                if action == QUIET_UNLESS_HELD:
                    self._keys(p, fp + l4 - 2 * alen, alen, proto, sport, dport)
                    action = FEED if PyDict_GetItem(self.streams, self.stream) is not NULL else QUIET
            elif proto == PROTO_UDP and stop >= l4 + 8 and not (PORT_TUNNEL[sport] or PORT_TUNNEL[dport]):
                length = seq >> 16
                if 8 <= length < stop - l4:
                    stop = l4 + length
                at = fp + l4 + 8
                size = fp + stop - at
                action = QUIET
                if size >= 8:
                    first = p[at]
                    if (PORT_SPECIAL[sport] or PORT_SPECIAL[dport]
                            or (BYPASS_FIRST[first] and (first > 4 or not p[at + 1]))
                            or (first & 0x80 and (first & 0x40 or (p[at + 1] == 0x51 and p[at + 2] == 0x30)))
                            or (not first & 0x80 and first & 0x01 and size >= 13
                                and p[at + (9 if first & 0x08 else 1)] == 0x51)):  # gQUIC "Q0nn"
                        action = FEED
        if action == FEED:
            self._fed(ts, ETHERNET, PyBytes_FromStringAndSize(<const char *>p + fp, caplen))
            return 0
        # -- a packet that can only open, extend or end its flow: what `feed` does with it, in place
        self.skipped += 1
        if ts >= self.next_expiry:
            self.expire(ts)
            self.next_expiry = self.sensor._next_expiry
        self._keys(p, fp + l4 - 2 * alen, alen, proto, sport, dport)
        flow = self.flow
        life = PyDict_GetItem(self.lives, flow)
        if action == END:  # a bare FIN or RST
            if life is not NULL:
                self.end_flow(flow, ts)
            self.drop_stream(self.stream)
            return 0
        if life is not NULL:
            life_obj = <object>life
            due, last = life_obj.due, life_obj.last
            if ts < due:
                if ts > last:
                    life_obj.last = ts
            else:
                self.touch(flow, life_obj, ts)
        if action == OPEN and not flags & TCP_ACK:  # a client's SYN: gather its stream
            self.open_stream(self.stream, (seq + 1) & 0xFFFFFFFF, ts)
        return 0
