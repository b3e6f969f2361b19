"""Jitted loops that locate packet records inside a chunk of capture-file bytes.

Each scanner walks records from ``pos`` and stops at the end of the chunk (``NEED_MORE``), at a full batch
(``BATCH_FULL``), at a record header that cannot be right (``CORRUPT``), or, for pcapng, at a block the
Python side parses itself (section and interface headers). They never read outside ``[pos, end)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NEED_MORE = 0
BATCH_FULL = 1
CORRUPT = 2
SECTION = 3  # pcapng section header block
INTERFACE = 4  # pcapng interface description block

# libpcap's MAXIMUM_SNAPLEN: no record holds more bytes than this.
MAX_CAPLEN = 262144
# pcapng blocks larger than this are treated as corrupt (a packet block is at most MAX_CAPLEN + options).
MAX_BLOCK = 16 * 1024 * 1024

BT_SHB = 0x0A0D0D0A
BT_IDB = 1
BT_OPB = 2
BT_SPB = 3
BT_NRB = 4
BT_ISB = 5
BT_EPB = 6


@njit(cache=True, inline="always")
def _u16(buf, p, swap):
    if swap:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)


@njit(cache=True, inline="always")
def _u32(buf, p, swap):
    if swap:
        return (
            (np.int64(buf[p]) << 24)
            | (np.int64(buf[p + 1]) << 16)
            | (np.int64(buf[p + 2]) << 8)
            | np.int64(buf[p + 3])
        )
    return (
        np.int64(buf[p])
        | (np.int64(buf[p + 1]) << 8)
        | (np.int64(buf[p + 2]) << 16)
        | (np.int64(buf[p + 3]) << 24)
    )


@njit(cache=True)
def scan_pcap(buf, pos, end, swap, nano, hdr_len, max_n, offset, caplen, wirelen, ts_us):
    """Locate pcap records; returns (count, new position, status)."""
    n = 0
    while True:
        if n >= max_n:
            return n, pos, BATCH_FULL
        if pos + hdr_len > end:
            return n, pos, NEED_MORE
        sec = _u32(buf, pos, swap)
        frac = _u32(buf, pos + 4, swap)
        incl = _u32(buf, pos + 8, swap)
        orig = _u32(buf, pos + 12, swap)
        if incl > MAX_CAPLEN:
            return n, pos, CORRUPT
        if pos + hdr_len + incl > end:
            return n, pos, NEED_MORE
        offset[n] = pos + hdr_len
        caplen[n] = incl
        wirelen[n] = orig if orig < 2147483647 else 2147483647
        if nano:
            ts_us[n] = sec * 1000000 + frac // 1000
        else:
            ts_us[n] = sec * 1000000 + frac
        n += 1
        pos += hdr_len + incl


@njit(cache=True, inline="always")
def _pcap_header_ok(buf, p, swap, nano, last_sec):
    incl = _u32(buf, p + 8, swap)
    orig = _u32(buf, p + 12, swap)
    frac = _u32(buf, p + 4, swap)
    if incl > MAX_CAPLEN or orig > MAX_CAPLEN or incl > orig or orig == 0:
        return False
    if frac >= (1000000000 if nano else 1000000):
        return False
    if last_sec >= 0:
        sec = _u32(buf, p, swap)
        if sec < last_sec - 86400 or sec > last_sec + 86400:
            return False
    return True


@njit(cache=True)
def resync_pcap(buf, pos, end, swap, nano, hdr_len, last_sec):
    """After a corrupt record header at ``pos``, find the next plausible record header.

    A candidate must look like a record header (lengths within limits, timestamp within a day of the last
    good record) and, when the buffer holds it, so must the record right after it. Returns the position or
    -1 if none was found before ``end``.
    """
    p = pos + 1
    while p + hdr_len <= end:
        if _pcap_header_ok(buf, p, swap, nano, last_sec):
            nxt = p + hdr_len + _u32(buf, p + 8, swap)
            if nxt + hdr_len > end or _pcap_header_ok(buf, nxt, swap, nano, last_sec):
                return p
        p += 1
    return -1


@njit(cache=True, inline="always")
def _ts_to_us(units, kind, exp, offset_us):
    # kind 0: units of 10**-exp seconds; kind 1: units of 2**-exp seconds.
    if kind == 0:
        if exp == 6:
            us = units
        elif exp < 6:
            us = units * 10 ** (6 - exp)
        else:
            us = units // 10 ** (exp - 6)
    else:
        if exp <= 40:
            whole = units >> exp
            part = units & ((np.int64(1) << exp) - 1)
            us = whole * 1000000 + ((part * 1000000) >> exp)
        else:
            us = np.int64(units / 2.0**exp * 1e6)
    return us + offset_us


@njit(cache=True)
def scan_pcapng(
    buf,
    pos,
    end,
    swap,
    max_n,
    if_linktype,
    if_snaplen,
    if_kind,
    if_exp,
    if_offset_us,
    n_if,
    offset,
    caplen,
    wirelen,
    ts_us,
    linktype,
    counters,
):
    """Locate packets in pcapng blocks; returns (count, new position, status).

    ``counters``: [0] malformed packet blocks skipped, [1] packet blocks naming an unknown interface,
    [2] other (skipped) blocks, [3] the last timestamp seen (for simple packet blocks, which carry none).
    """
    n = 0
    while True:
        if n >= max_n:
            return n, pos, BATCH_FULL
        if pos + 12 > end:
            return n, pos, NEED_MORE
        btype = _u32(buf, pos, swap)
        if btype == BT_SHB:
            return n, pos, SECTION
        blen = _u32(buf, pos + 4, swap)
        if blen < 12 or blen % 4 != 0 or blen > MAX_BLOCK:
            return n, pos, CORRUPT
        if pos + blen > end:
            return n, pos, NEED_MORE
        if _u32(buf, pos + blen - 4, swap) != blen:
            return n, pos, CORRUPT
        if btype == BT_IDB:
            return n, pos, INTERFACE
        if btype in (BT_EPB, BT_OPB):
            if blen < 32:
                counters[0] += 1
            else:
                ifid = _u32(buf, pos + 8, swap) if btype == BT_EPB else _u16(buf, pos + 8, swap)
                hi = _u32(buf, pos + 12, swap)
                lo = _u32(buf, pos + 16, swap)
                incl = _u32(buf, pos + 20, swap)
                orig = _u32(buf, pos + 24, swap)
                if 28 + incl > blen - 4 or incl > MAX_CAPLEN:
                    counters[0] += 1
                elif ifid >= n_if:
                    counters[1] += 1
                else:
                    units = (hi << 32) | lo
                    t = _ts_to_us(units, if_kind[ifid], if_exp[ifid], if_offset_us[ifid])
                    offset[n] = pos + 28
                    caplen[n] = incl
                    wirelen[n] = orig if orig < 2147483647 else 2147483647
                    ts_us[n] = t
                    linktype[n] = if_linktype[ifid]
                    counters[3] = t
                    n += 1
        elif btype == BT_SPB:
            if n_if < 1 or blen < 16:
                counters[0] += 1
            else:
                orig = _u32(buf, pos + 8, swap)
                incl = orig
                if if_snaplen[0] > 0 and incl > if_snaplen[0]:
                    incl = if_snaplen[0]
                if incl > blen - 16:
                    incl = blen - 16
                offset[n] = pos + 12
                caplen[n] = incl
                wirelen[n] = orig if orig < 2147483647 else 2147483647
                ts_us[n] = counters[3]
                linktype[n] = if_linktype[0]
                n += 1
        else:
            counters[2] += 1
        pos += blen


@njit(cache=True)
def resync_pcapng(buf, pos, end, swap):
    """Next 4-byte-aligned offset after ``pos`` that starts a well-formed block, or -1."""
    p = pos + 4
    while p + 12 <= end:
        btype = _u32(buf, p, swap)
        if btype == BT_SHB or (1 <= btype <= 6) or btype == 0x0000000A:
            blen = _u32(buf, p + 4, swap)
            if btype == BT_SHB:
                return p
            if 12 <= blen <= MAX_BLOCK and blen % 4 == 0:
                if p + blen > end:
                    return p
                if _u32(buf, p + blen - 4, swap) == blen:
                    return p
        p += 4
    return -1
