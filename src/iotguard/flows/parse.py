"""Parse a batch of raw packets into struct-of-arrays fields, one jitted pass per batch.

Link layers: Ethernet (with any number of 802.1Q/802.1ad/QinQ tags and PPPoE sessions), Linux cooked
capture v1 and v2, raw IPv4/IPv6, BSD null and OpenBSD loop. Network: IPv4 (options, fragments) and IPv6
(hop-by-hop, routing, fragment, destination-options, AH, mobility, HIP and shim6 extension headers).
Transport: TCP, UDP, ICMP and ICMPv6; any other IP protocol becomes a flow with ports 0.

Lengths follow CICFlowMeter: ``payload`` is the transport payload computed from the IP header's lengths
(never from the captured bytes, so Ethernet padding and snap lengths do not count; only a frame whose wire
length is shorter than its IP length is cut to the wire length), ``hdr`` is the transport
header length (TCP data offset, 8 for UDP). ICMP packets have payload 0 and header 0, as in the CNS2022
release of CICFlowMeter. Packets that cannot become part of a flow get a nonzero ``reason``.

``http`` looks into one place of the payload: a TCP packet whose payload starts an HTTP/1.x request (a method
token and a space) gets the number of *injection indicators* in its request target (percent-decoded) and in
the part of its body that the packet carries; every other packet gets 0. See :func:`http_indicators`.
``exe`` looks at the first bytes of a TCP payload, or of the body after an HTTP response head, for the header of
a Linux executable (ELF); see :func:`_executable` (run in the same pass as :func:`http_indicators`).
``rfb`` marks a TCP payload that is an RFB (VNC) ProtocolVersion banner or a failed SecurityResult; see
:func:`_rfb` (same pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from iotguard.capture.batch import PacketBatch

# Reasons a packet is skipped (0: parsed). Names are what stats and the CLI report.
OK = 0
NON_IP = 1
UNSUPPORTED_LINK = 2
TRUNCATED = 3
MALFORMED_IP = 4
IP_FRAGMENT = 5
MALFORMED_L4 = 6
REASON_NAMES = {
    NON_IP: "non_ip",
    UNSUPPORTED_LINK: "unsupported_link_type",
    TRUNCATED: "truncated",
    MALFORMED_IP: "malformed_ip",
    IP_FRAGMENT: "ip_fragment",
    MALFORMED_L4: "malformed_transport",
}

# ``Packets.http_head``: a packet that starts an HTTP request whose header block it does not finish, and one whose
# payload ends with the blank line that ends a header block.
HEAD_OPEN = 1
HEAD_END = 2

# ``Packets.exe``: where a TCP packet carries the start of a Linux executable (an ELF header, see _elf)
ELF_AT_START = 1  # its payload starts with one (the start of a stream, or of a body whose head came before)
ELF_IN_RESPONSE = 2  # it starts an HTTP response whose body, in the same packet, starts with one
RESPONSE_HEAD = (
    3  # it starts an HTTP response whose head ends with the packet: the body starts in a later one
)

# ``Packets.rfb``: a TCP payload that is, in shape, an RFB (VNC) handshake message (see _rfb)
RFB_BANNER = 1  # a ProtocolVersion message: exactly "RFB ddd.ddd\n"
RFB_FAILED = 2  # a SecurityResult "failed": 00 00 00 01, alone or with its reason (length and text) after it

# TCP flag bits, as in the TCP header's flags byte.
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128

# IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d) in the (hi, lo) 128-bit pair.
V4_MAPPED = np.uint64(0x0000FFFF00000000)


@dataclass(frozen=True, slots=True)
class Packets:
    """Parsed header fields of a batch (index i is packet i of the batch)."""

    ts_us: np.ndarray  # int64
    src_hi: np.ndarray  # uint64
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    sport: np.ndarray  # int32
    dport: np.ndarray
    proto: np.ndarray
    payload: np.ndarray  # transport payload bytes
    hdr: np.ndarray  # transport header bytes
    flags: np.ndarray  # TCP flags byte (0 for other protocols)
    window: np.ndarray  # TCP window (0 for other protocols)
    icmp_type: np.ndarray  # -1 unless ICMP/ICMPv6
    icmp_code: np.ndarray
    reason: np.ndarray  # uint8, 0 = parsed
    http: np.ndarray | None = None  # int32 injection indicators of an HTTP request (None: all 0)
    pay_at: np.ndarray | None = None  # int64 offset of the TCP payload in the batch's data (-1: not TCP)
    http_head: np.ndarray | None = None  # int8 HEAD_OPEN / HEAD_END / 0 (None: all 0), see http_indicators
    exe: np.ndarray | None = None  # int8 ELF_AT_START / ELF_IN_RESPONSE / RESPONSE_HEAD / 0 (None: all 0)
    rfb: np.ndarray | None = None  # int8 RFB_BANNER / RFB_FAILED / 0 (None: all 0), see _rfb

    def __len__(self) -> int:
        return int(self.ts_us.shape[0])


@njit(cache=True, inline="always")
def _be16(buf, p):
    return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])


@njit(cache=True, inline="always")
def _be32(buf, p):
    return (
        (np.int64(buf[p]) << 24)
        | (np.int64(buf[p + 1]) << 16)
        | (np.int64(buf[p + 2]) << 8)
        | np.int64(buf[p + 3])
    )


@njit(cache=True, inline="always")
def _be64u(buf, p):
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(buf[p + k])
    return v


@njit(cache=True, inline="always")
def _vlan_loop(buf, q, end, etype):
    """Skip 802.1Q/802.1ad/QinQ tags and PPPoE session headers; returns (ethertype, offset) or (-1, ...)."""
    for _ in range(8):
        if etype == 0x8100 or etype == 0x88A8 or etype == 0x9100 or etype == 0x9200:
            if q + 4 > end:
                return -1, q
            etype = _be16(buf, q + 2)
            q += 4
        elif etype == 0x8864:  # PPPoE session: 6-byte header then a 2-byte PPP protocol
            if q + 8 > end:
                return -1, q
            ppp = _be16(buf, q + 6)
            q += 8
            if ppp == 0x0021:
                etype = 0x0800
            elif ppp == 0x0057:
                etype = 0x86DD
            else:
                etype = 0
        else:
            break
    return etype, q


@njit(cache=True)
def parse_batch(
    data,
    offset,
    caplen,
    wirelen,
    linktype,
    src_hi,
    src_lo,
    dst_hi,
    dst_lo,
    sport,
    dport,
    proto,
    payload,
    hdr,
    flags,
    window,
    icmp_type,
    icmp_code,
    reason,
    pay_at,
):
    n = offset.shape[0]
    for i in range(n):
        p = offset[i]
        end = p + caplen[i]
        if end > data.shape[0] or caplen[i] < 0:
            reason[i] = TRUNCATED
            continue
        wire_end = p + wirelen[i]
        lt = linktype[i]
        etype = -1  # -1: truncated link header; 0: not IP; 0x0800 / 0x86DD
        q = p
        if lt == 1:
            if caplen[i] < 14:
                etype = -1
            else:
                etype, q = _vlan_loop(data, p + 14, end, _be16(data, p + 12))
        elif lt == 113:
            if caplen[i] < 16:
                etype = -1
            else:
                etype, q = _vlan_loop(data, p + 16, end, _be16(data, p + 14))
        elif lt == 276:
            if caplen[i] < 20:
                etype = -1
            else:
                etype, q = _vlan_loop(data, p + 20, end, _be16(data, p))
        elif lt == 101 or lt == 12 or lt == 14 or lt == 228 or lt == 229:
            if caplen[i] < 1:
                etype = -1
            else:
                v = data[p] >> 4
                etype = 0x0800 if v == 4 else (0x86DD if v == 6 else 0)
        elif lt == 0 or lt == 108:
            if caplen[i] < 4:
                etype = -1
            else:
                if lt == 108:
                    fam = _be32(data, p)
                else:
                    fam = (
                        np.int64(data[p])
                        | (np.int64(data[p + 1]) << 8)
                        | (np.int64(data[p + 2]) << 16)
                        | (np.int64(data[p + 3]) << 24)
                    )
                    if fam > 0xFFFF:  # written by a host of the other byte order
                        fam = _be32(data, p)
                q = p + 4
                etype = (
                    0x0800
                    if fam == 2
                    else (0x86DD if fam == 10 or fam == 24 or fam == 28 or fam == 30 else 0)
                )
        else:
            reason[i] = UNSUPPORTED_LINK
            continue
        if etype == -1:
            reason[i] = TRUNCATED
            continue
        if etype != 0x0800 and etype != 0x86DD:
            reason[i] = NON_IP
            continue

        # -- network layer: find the transport header (l4) and its length (l4len) ----------------------
        pr = -1
        l4 = 0
        l4len = 0
        if etype == 0x0800:
            if q + 20 > end:
                reason[i] = TRUNCATED
                continue
            if (data[q] >> 4) != 4:
                reason[i] = MALFORMED_IP
                continue
            ihl = np.int64(data[q] & 15) * 4
            if ihl < 20:
                reason[i] = MALFORMED_IP
                continue
            total = _be16(data, q + 2)
            if total == 0:  # segmentation offload: the NIC fills in the length later
                total = wire_end - q
            if total < ihl:
                reason[i] = MALFORMED_IP
                continue
            if _be16(data, q + 6) & 0x1FFF:
                reason[i] = IP_FRAGMENT
                continue
            pr = np.int64(data[q + 9])
            src_hi[i] = np.uint64(0)
            dst_hi[i] = np.uint64(0)
            src_lo[i] = V4_MAPPED | np.uint64(_be32(data, q + 12))
            dst_lo[i] = V4_MAPPED | np.uint64(_be32(data, q + 16))
            l4 = q + ihl
            l4len = total - ihl
        else:
            if q + 40 > end:
                reason[i] = TRUNCATED
                continue
            if (data[q] >> 4) != 6:
                reason[i] = MALFORMED_IP
                continue
            plen = _be16(data, q + 4)
            if plen == 0:  # jumbogram or segmentation offload
                plen = wire_end - q - 40
                if plen < 0:
                    plen = 0
            nh = np.int64(data[q + 6])
            src_hi[i] = _be64u(data, q + 8)
            src_lo[i] = _be64u(data, q + 16)
            dst_hi[i] = _be64u(data, q + 24)
            dst_lo[i] = _be64u(data, q + 32)
            l4 = q + 40
            l4len = plen
            bad = OK
            for _ in range(16):
                if nh == 0 or nh == 43 or nh == 60 or nh == 135 or nh == 139 or nh == 140:
                    if l4 + 2 > end:
                        bad = TRUNCATED
                        break
                    hl = (np.int64(data[l4 + 1]) + 1) * 8
                elif nh == 51:
                    if l4 + 2 > end:
                        bad = TRUNCATED
                        break
                    hl = (np.int64(data[l4 + 1]) + 2) * 4
                elif nh == 44:
                    if l4 + 8 > end:
                        bad = TRUNCATED
                        break
                    if _be16(data, l4 + 2) & 0xFFF8:
                        bad = IP_FRAGMENT
                        break
                    hl = 8
                else:
                    break
                nh = np.int64(data[l4])
                l4 += hl
                l4len -= hl
            if bad != OK:
                reason[i] = bad
                continue
            if l4len < 0:
                reason[i] = MALFORMED_IP
                continue
            pr = nh

        # A frame shorter on the wire than its IP header claims ("truncated-ip") carries only what the wire
        # length allows, as CICFlowMeter's jnetpcap counts it.
        if l4len > wire_end - l4:
            l4len = max(wire_end - l4, 0)

        # -- transport layer ------------------------------------------------------------------------
        proto[i] = pr
        flags[i] = 0
        window[i] = 0
        icmp_type[i] = -1
        icmp_code[i] = -1
        if pr == 6:
            if l4 + 16 > end:
                reason[i] = TRUNCATED
                continue
            doff = np.int64(data[l4 + 12] >> 4) * 4
            if doff < 20 or doff > l4len:
                reason[i] = MALFORMED_L4
                continue
            sport[i] = _be16(data, l4)
            dport[i] = _be16(data, l4 + 2)
            flags[i] = data[l4 + 13]
            window[i] = _be16(data, l4 + 14)
            hdr[i] = doff
            payload[i] = l4len - doff
            pay_at[i] = l4 + doff
        elif pr == 17:
            if l4 + 4 > end:
                reason[i] = TRUNCATED
                continue
            if l4len < 8:
                reason[i] = MALFORMED_L4
                continue
            sport[i] = _be16(data, l4)
            dport[i] = _be16(data, l4 + 2)
            hdr[i] = 8
            payload[i] = l4len - 8
        elif pr == 1 or pr == 58:
            if l4 + 2 > end:
                reason[i] = TRUNCATED
                continue
            sport[i] = 0
            dport[i] = 0
            icmp_type[i] = data[l4]
            icmp_code[i] = data[l4 + 1]
            hdr[i] = 0
            payload[i] = 0
        else:
            sport[i] = 0
            dport[i] = 0
            hdr[i] = 0
            payload[i] = l4len
        reason[i] = OK


def parse(batch: PacketBatch) -> Packets:
    """Parse every packet of ``batch`` (see the module docstring for what is understood)."""
    n = len(batch)
    out = Packets(
        ts_us=batch.ts_us,
        src_hi=np.zeros(n, np.uint64),
        src_lo=np.zeros(n, np.uint64),
        dst_hi=np.zeros(n, np.uint64),
        dst_lo=np.zeros(n, np.uint64),
        sport=np.zeros(n, np.int32),
        dport=np.zeros(n, np.int32),
        proto=np.zeros(n, np.int32),
        payload=np.zeros(n, np.int32),
        hdr=np.zeros(n, np.int32),
        flags=np.zeros(n, np.int32),
        window=np.zeros(n, np.int32),
        icmp_type=np.full(n, -1, np.int32),
        icmp_code=np.full(n, -1, np.int32),
        reason=np.zeros(n, np.uint8),
        http=np.zeros(n, np.int32),
        pay_at=np.full(n, -1, np.int64),
        http_head=np.zeros(n, np.int8),
        exe=np.zeros(n, np.int8),
        rfb=np.zeros(n, np.int8),
    )
    if n:
        pay_at = out.pay_at
        parse_batch(
            batch.data,
            batch.offset,
            batch.caplen,
            batch.wirelen,
            batch.linktype,
            out.src_hi,
            out.src_lo,
            out.dst_hi,
            out.dst_lo,
            out.sport,
            out.dport,
            out.proto,
            out.payload,
            out.hdr,
            out.flags,
            out.window,
            out.icmp_type,
            out.icmp_code,
            out.reason,
            pay_at,
        )
        http_indicators(
            batch.data,
            batch.offset,
            batch.caplen,
            out.payload,
            pay_at,
            out.reason,
            out.http,
            out.http_head,
            out.exe,
            out.rfb,
        )
    return out


# HTTP/1.x request methods (RFC 9110 and WebDAV's common ones), one per row, zero-padded; a request starts
# "METHOD ".
_METHOD_NAMES = (
    b"GET",
    b"POST",
    b"PUT",
    b"HEAD",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
)
_METHODS = np.zeros((len(_METHOD_NAMES), 8), dtype=np.uint8)
for _row, _name in enumerate(_METHOD_NAMES):
    _METHODS[_row, : len(_name)] = np.frombuffer(_name, dtype=np.uint8)
_METHOD_LEN = np.array([len(m) for m in _METHOD_NAMES], dtype=np.int64)
_MAX_TARGET = 4096  # bytes of a request target (or an inspected header's value) looked at
_MAX_BODY = 2048  # bytes of a body looked at

# Request headers whose value the protocol defines as a URI or command, never free text, and that an exploit
# can carry its command in; each is inspected like a request target (lower-case names):
# * SOAPAction (SOAP 1.1, section 6.1.1; UPnP device control; D-Link HNAP): a quoted URI naming the operation
#   to run. The D-Link HNAP exploits that Mirai variants spread with (CVE-2015-2051, CVE-2019-10891) put a
#   shell command in it, in backquotes; a real one is "urn:...#Action" or "http://purenetworks.com/HNAP1/Name",
#   with no shell or SQL metacharacter. One pair of enclosing quotes is its syntax and is not counted.
# * Host (RFC 9110, section 7.2): uri-host [":" port], whose syntax admits none of the indicators (an IPv6
#   literal's brackets are none either), so any indicator in it is an injection (host header injection into
#   a CGI or a log that reaches a shell or SQL).
# Not inspected: User-Agent, Cookie, Accept*, Content-Type (free text and parameter lists full of ";()'"), and
# Referer/Origin/Location: URIs, but copies of another page's URL (its target was inspected in its own request).
_HEADER_NAMES = (b"soapaction", b"host")
_HEADER_QUOTED = np.array([True, False])  # the value is a quoted string whose enclosing quotes are syntax
_HEADERS = np.zeros((len(_HEADER_NAMES), 16), dtype=np.uint8)
for _row, _name in enumerate(_HEADER_NAMES):
    _HEADERS[_row, : len(_name)] = np.frombuffer(_name, dtype=np.uint8)
_HEADER_LEN = np.array([len(h) for h in _HEADER_NAMES], dtype=np.int64)


@njit(cache=True, inline="always")
def _hex(c):
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


@njit(cache=True)
def _is_method(data, p, end):
    """Length of the method token at ``p`` if the bytes there are ``METHOD `` (else 0)."""
    k = 0
    while p + k < end and k < 8 and 65 <= data[p + k] <= 90:
        k += 1
    if k < 3 or p + k >= end or data[p + k] != 32:
        return 0
    for r in range(_METHODS.shape[0]):
        if _METHOD_LEN[r] == k:
            same = True
            for j in range(k):
                if data[p + j] != _METHODS[r, j]:
                    same = False
                    break
            if same:
                return k
    return 0


@njit(cache=True)
def _header(data, p, end):
    """Row of :data:`_HEADER_NAMES` whose name (any case) and a colon start the line at ``p`` (else -1)."""
    for r in range(_HEADERS.shape[0]):
        k = _HEADER_LEN[r]
        if p + k >= end or data[p + k] != 58:  # ':'
            continue
        same = True
        for j in range(k):
            c = data[p + j]
            if 65 <= c <= 90:
                c += 32
            if c != _HEADERS[r, j]:
                same = False
                break
        if same:
            return r
    return -1


@njit(cache=True)
def _count(data, p, end, target):
    """Injection indicators in ``data[p:end]``, percent-decoding as it goes. In a request target: the shell
    and SQL metacharacters ``; | ` $ ' " < > \\ { }`` and each ``../`` or ``..\\``; in a body (form data,
    XML, JSON, whose quotes and angle brackets are their syntax): only ``` ; | `` ``$(`` ``${`` and ``../``, and
    only in a text body (none for a body with bytes outside printable ASCII, tabs and line ends)."""
    n = 0
    prev2 = 0
    prev = 0
    q = p
    while q < end:
        c = np.int64(data[q])
        if not target and (c < 9 or 13 < c < 32 or c >= 127):
            return 0  # a binary body (an upload, compressed data): its bytes are no text to inspect
        if c == 37 and q + 2 < end and _hex(data[q + 1]) >= 0 and _hex(data[q + 2]) >= 0:
            c = _hex(data[q + 1]) * 16 + _hex(data[q + 2])
            q += 3
        else:
            q += 1
        shell = c == 59 or c == 124 or c == 96  # ; | `
        expansion = (c == 40 or c == 123) and prev == 36  # $( ${
        traversal = (c == 47 or c == 92) and prev == 46 and prev2 == 46  # ../ ..\
        quoting = target and (
            c == 36 or c == 39 or c == 34 or c == 60 or c == 62 or c == 92 or c == 123 or c == 125
        )  # $ ' " < > \ { }
        if shell or expansion or traversal or quoting:
            n += 1
        prev2 = prev
        prev = c
    return n


@njit(cache=True)
def http_indicators(data, offset, caplen, payload, pay_at, reason, out, head, exe, rfb):
    """Per packet: injection indicators of the HTTP request it starts (0 for every other packet), and in
    ``head`` whether it starts a request whose header block it does not finish (:data:`HEAD_OPEN`) or its
    payload ends with the blank line that ends a header block (:data:`HEAD_END`), for the slow-HTTP check.

    Only what the packet itself carries is read (a request split over segments is judged on its first), and
    at most :data:`_MAX_TARGET` bytes of the target and of each inspected header, :data:`_MAX_BODY` of the
    body. Of the headers only those the protocol defines as a URI (:data:`_HEADER_NAMES`: ``SOAPAction``,
    ``Host``) are read: a browser's ``User-Agent`` and ``Cookie`` are full of parentheses and semicolons.

    In the same pass (one look at each payload's first bytes), ``exe`` gets where the packet carries the start
    of a Linux executable (:func:`_executable`), and ``rfb`` whether it is an RFB handshake message (:func:`_rfb`)."""
    for i in range(offset.shape[0]):
        p = pay_at[i]
        if reason[i] != 0 or p < 0 or payload[i] <= 0:
            continue
        end = min(offset[i] + caplen[i], p + payload[i])
        exe[i] = _executable(data, p, end, p + payload[i])
        rfb[i] = _rfb(data, p, end, payload[i])
        if (
            end - p >= 2
            and data[end - 1] == 10
            and (data[end - 2] == 10 or (end - p >= 4 and data[end - 2] == 13 and data[end - 3] == 10))
        ):
            head[i] = HEAD_END  # ends in LF LF or LF CR LF: the blank line after the last header
        k = _is_method(data, p, end)
        if k == 0:
            continue
        t0 = p + k + 1
        t1 = t0
        while t1 < end and t1 - t0 < _MAX_TARGET and data[t1] != 32 and data[t1] != 13 and data[t1] != 10:
            t1 += 1
        n = _count(data, t0, t1, True)
        # header lines follow the request line; the body starts after the first empty line
        q = t1
        while q < end and data[q] != 10:
            q += 1
        q += 1
        finished = False
        while q < end:
            if data[q] == 10 or (data[q] == 13 and q + 1 < end and data[q + 1] == 10):
                b = q + 1 if data[q] == 10 else q + 2
                n += _count(data, b, min(end, b + _MAX_BODY), False)
                finished = True
                break
            e = q
            while e < end and data[e] != 10:
                e += 1
            r = _header(data, q, e)
            if r >= 0:
                v0 = q + _HEADER_LEN[r] + 1
                v1 = e
                while v0 < v1 and (data[v0] == 32 or data[v0] == 9):
                    v0 += 1
                while v1 > v0 and (data[v1 - 1] == 13 or data[v1 - 1] == 32 or data[v1 - 1] == 9):
                    v1 -= 1
                if _HEADER_QUOTED[r] and v1 - v0 >= 2 and data[v0] == 34 and data[v1 - 1] == 34:
                    v0 += 1
                    v1 -= 1
                n += _count(data, v0, min(v1, v0 + _MAX_TARGET), True)
            q = e + 1
        out[i] = n
        if not finished and end == p + payload[i]:  # (a snapped packet may have had the rest)
            head[i] = HEAD_OPEN


_MAX_HEAD = (
    8192  # bytes of an HTTP response head looked through for its end (8 KiB: most servers' head limit)
)


@njit(cache=True, inline="always")
def _elf(data, q, end):
    """An ELF header at ``q``: the magic ``7f 'E' 'L' 'F'`` and a valid class (1: 32-bit, 2: 64-bit), the fields
    every ELF loader checks first. (The later identification bytes are not read: a bot's packer may garble
    them, and the magic and class already make a chance match in other data about one in 10**10.)"""
    return (
        q + 5 <= end
        and data[q] == 0x7F
        and data[q + 1] == 69
        and data[q + 2] == 76
        and data[q + 3] == 70
        and (data[q + 4] == 1 or data[q + 4] == 2)
    )


@njit(cache=True)
def _elf_body(data, q, end):
    """An ELF header at ``q``, or after a chunk-size line there (a chunked HTTP body's first chunk: hex digits,
    an optional extension after ``;``, CRLF; RFC 9112 section 7.1)."""
    if _elf(data, q, end):
        return True
    k = q
    while k < end and k - q < 16 and _hex(data[k]) >= 0:
        k += 1
    if k == q or k >= end or not (data[k] == 59 or data[k] == 13 or data[k] == 10 or data[k] == 32):
        return False
    lim = min(end, k + 256)
    while k < lim and data[k] != 10:
        k += 1
    return k < lim and _elf(data, k + 1, end)


@njit(cache=True)
def _executable(data, p, end, whole):
    """Where the TCP payload at ``data[p:end]`` (``whole``: where it would end uncut) carries the start of a Linux
    executable: :data:`ELF_AT_START` if it starts with an ELF header, :data:`ELF_IN_RESPONSE` if it starts an
    HTTP/1.x response (``HTTP/1.``) whose body, in this packet, starts with one (or with a chunk-size line and
    one), :data:`RESPONSE_HEAD` if it starts a response whose head ends exactly at the packet's end (servers
    often write the head and then the file: the body's first bytes come in the next segment); 0 otherwise.
    Whether an ``ELF_AT_START`` packet starts a stream or a body is the flow table's to know.

    A payload whose first byte is neither ``0x7f`` nor ``H`` costs one comparison (a chunk-size line is looked
    for only after a response head: at the start of every payload it would cost each MQTT publish, whose first
    byte is an ASCII digit, a call); a response head is scanned for its blank line within the packet's first
    :data:`_MAX_HEAD` bytes (a head spread over segments is not followed)."""
    if end - p < 5:
        return 0
    c = data[p]
    if c != 72:  # 'H'
        return ELF_AT_START if c == 0x7F and _elf(data, p, end) else 0
    if not (
        end - p >= 9
        and data[p + 1] == 84
        and data[p + 2] == 84
        and data[p + 3] == 80
        and data[p + 4] == 47
        and data[p + 5] == 49
        and data[p + 6] == 46
    ):  # "HTTP/1."
        return 0
    end = min(end, p + _MAX_HEAD)
    q = p + 7
    while q < end and data[q] != 10:
        q += 1
    while q < end:  # q: a line feed; the head ends at an empty line after it
        if q + 1 < end and data[q + 1] == 10:
            b = q + 2
        elif q + 2 < end and data[q + 1] == 13 and data[q + 2] == 10:
            b = q + 3
        elif q + 1 == end or (q + 2 == end and data[q + 1] == 13):
            return 0  # the packet ends inside the last line ending: not known to be a head's end
        else:
            q += 1
            while q < end and data[q] != 10:
                q += 1
            continue
        if b == end:
            return RESPONSE_HEAD if b == whole else 0  # (a snapped packet may have had the body)
        return ELF_IN_RESPONSE if _elf_body(data, b, end) else 0
    return 0


_MAX_RFB_REASON = 1024  # longest failure reason looked for in the SecurityResult's own segment


@njit(cache=True, inline="always")
def _rfb(data, p, end, whole):
    """Whether the TCP payload at ``data[p:end]`` (``whole`` bytes uncut) is, in shape, an RFB (VNC, RFC 6143)
    handshake message a server sends: :data:`RFB_BANNER` for a ProtocolVersion (exactly the 12 bytes
    ``RFB ddd.ddd\\n``, section 7.1.1), :data:`RFB_FAILED` for a SecurityResult "failed" (section 7.1.3): the
    4 bytes ``00 00 00 01`` alone (RFB 3.3 and 3.7 send no reason; a 3.8 server may send its reason in later
    segments), or followed by a 4-byte big-endian reason length L and L bytes, the payload exactly 8 + L bytes
    with L <= :data:`_MAX_RFB_REASON` (3.8 in one segment); 0 otherwise.

    The shapes are common bytes (a FramebufferUpdate of one rectangle starts ``00 00 00 01`` too): where in an
    RFB server's stream they count is the flow table's to know. A payload whose first byte is neither ``R`` nor
    0 costs one comparison."""
    if end <= p:  # the payload was not captured (snapped): nothing to read
        return 0
    c = data[p]
    if c == 82:  # 'R'
        return (
            RFB_BANNER
            if whole == 12
            and end - p == 12
            and data[p + 1] == 70
            and data[p + 2] == 66
            and data[p + 3] == 32
            and 48 <= data[p + 4] <= 57
            and 48 <= data[p + 5] <= 57
            and 48 <= data[p + 6] <= 57
            and data[p + 7] == 46
            and 48 <= data[p + 8] <= 57
            and 48 <= data[p + 9] <= 57
            and 48 <= data[p + 10] <= 57
            and data[p + 11] == 10
            else 0
        )
    if c != 0 or end - p < 4 or data[p + 1] != 0 or data[p + 2] != 0 or data[p + 3] != 1:
        return 0
    if whole == 4:
        return RFB_FAILED
    if end - p < 8 or data[p + 4] != 0 or data[p + 5] != 0:
        return 0
    n = (np.int64(data[p + 6]) << 8) | np.int64(data[p + 7])
    return RFB_FAILED if n <= _MAX_RFB_REASON and whole == 8 + n else 0


def reason_counts(reason: np.ndarray) -> dict[str, int]:
    """Skipped packets by reason name (zero counts left out)."""
    counts = np.bincount(reason, minlength=len(REASON_NAMES) + 1)
    return {name: int(counts[code]) for code, name in REASON_NAMES.items() if counts[code]}
