"""Who is the attacker of a flagged flow? Usually the flow's source (the host that sent its first packet); not
for flows that are only someone's *answer* to traffic of the other side, and nobody for some flows.

**ICMP replies and errors.** An ICMP error (destination unreachable, time exceeded, ...) is sent by the host
that *received* something: a UDP or version scan makes every probed victim answer with ICMP port unreachable,
so those ICMP flows start at the victim and end at the scanner. A flow whose first packet is an ICMP reply
(echo reply, timestamp reply) was opened by the replier's peer. Scored as the attack (the pattern is the
scan's, after all), such a flow would name the victim as the attacker, and a block policy would cut the victim
off. So these *reply-only* flows are attributed to their peer: the alert's attacker (``src_ip``) is the flow's
destination and its victim the flow's source.

**TCP** flows are oriented by their first packet, which for a connection is the initiator's SYN. When the
capture missed that SYN (it started mid-handshake, the tap sees one direction, the SYN took another path), the
first packet the meter saw tells who answered (RFC 9293; the flow table keeps its flags, ``tcp_first_flags``):

* a **SYN-ACK** answers a SYN: the flow's destination opened the connection. The flow is reply-only (named
  the other way round) when the destination went on with it (sent anything but a RST) or sent nothing we saw.
  When the destination only answered with RSTs, it never asked for the connection (RFC 9293 resets an
  unacceptable SYN-ACK): the SYN-ACKs were unsolicited, a SYN-ACK flood from the source or the backscatter
  of a SYN flood *against* the source that spoofed the destination's address. Nothing in the flow tells which,
  and in the second the source is the victim, so such a flow names **nobody** (``unattributed``).
* a first **RST** (without SYN) answers a segment we did not see, or is forged (RST injection, a RST flood).
  Nothing in the flow tells which: its source may be a scanned victim answering a probe, or the attacker;
  its destination the scanner, or the victim. Such a flow names **nobody** (``unattributed``).
* Any other first packet (ACK, data, FIN, no flags) is what scans and floods send (ACK, FIN, NULL and XMAS
  scans, ACK floods): the flow stays with its source, as do UDP flows.

**Self flows.** A two-way flow between an address and itself names no attacker at all. A host's traffic to
itself never reaches the wire, so on a capture such a flow means addresses were rewritten (an anonymised trace
maps both ends to one address) or the capture is of a loopback interface; either way the attacker would be the
victim, and a block would cut the victim off. A one-way flow from an address to itself (a LAND attack: spoofed
packets whose source is the victim) still alerts.

**Addresses that are no host.** A source that is the unspecified address (``0.0.0.0``, ``::``: a host that
has no address yet, as in DHCP discovery and IPv6 duplicate address detection), a multicast or a broadcast
address (which RFC 1122 and RFC 4291 forbid as a source: forged) names no host that could be contained, and
blocking it would cut off every host that uses it legitimately. Such a flow names **nobody**
(``unattributed``).

The detection engine drops alerts on flows that name nobody and counts them (``self_flows``,
``unattributed``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from iotguard.core.schema import FIRST_FLAGS_COLUMN

ICMP = 1
TCP = 6
ICMPV6 = 58
ICMP_REPLY_ONLY = (0, 3, 4, 5, 11, 12, 14, 16, 18)
"""ICMPv4 types only ever sent in answer to another host's packet: echo reply (0), destination unreachable
(3), source quench (4), redirect (5), time exceeded (11), parameter problem (12), timestamp reply (14),
information reply (16), address mask reply (18)."""
ICMPV6_REPLY_ONLY = (1, 2, 3, 4, 129)
"""ICMPv6: destination unreachable (1), packet too big (2), time exceeded (3), parameter problem (4), echo
reply (129)."""
SYN, RST, ACK = 2, 4, 16

COLUMNS = ("protocol", "icmp_type", FIRST_FLAGS_COLUMN, "bwd_packets", "bwd_rst_flags")
"""The numeric flow columns attribution reads (missing ones read as unknown)."""


@dataclass(frozen=True, slots=True)
class Attribution:
    """Per flow record: the attacker and victim addresses an alert on it names, and why."""

    attacker: np.ndarray  # object (str)
    victim: np.ndarray  # object (str)
    swapped: np.ndarray  # bool: a reply-only flow, attributed to its destination
    self_flow: np.ndarray  # bool: a two-way flow between an address and itself (names nobody)
    unattributed: np.ndarray  # bool: names nobody (a TCP flow opened by a RST, a source that is no host)

    @property
    def nobody(self) -> np.ndarray:
        """Flows whose alerts name no attacker (the engine drops them)."""
        return self.self_flow | self.unattributed


def numeric(flows: pd.DataFrame, names: tuple[str, ...] = COLUMNS) -> dict[str, np.ndarray]:
    """The named columns as float arrays (NaN where missing or not a number)."""
    out = {}
    for name in names:
        if name in flows.columns:
            out[name] = pd.to_numeric(flows[name], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        else:
            out[name] = np.full(len(flows), np.nan)
    return out


@lru_cache(maxsize=65536)
def is_host_address(address: str) -> bool:
    """Whether ``address`` can name one host: not unspecified, multicast or the limited broadcast address
    (nor unparseable). A subnet's directed broadcast is not known here and passes."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (ip.is_unspecified or ip.is_multicast or (ip.version == 4 and int(ip) == 0xFFFFFFFF))


def attribute(src: np.ndarray, dst: np.ndarray, columns: dict[str, np.ndarray]) -> Attribution:
    """Attribute each flow record: ``src``/``dst`` are its address strings, ``columns`` its numeric columns
    (:data:`COLUMNS`; a missing one may be absent or NaN: the rules that need it then do not apply)."""
    n = len(src)
    nan = np.full(n, np.nan)
    proto, icmp_type = columns.get("protocol", nan), columns.get("icmp_type", nan)
    first, bwd = columns.get(FIRST_FLAGS_COLUMN, nan), columns.get("bwd_packets", nan)
    bwd_rst = columns.get("bwd_rst_flags", nan)
    icmp_reply = ((proto == ICMP) & np.isin(icmp_type, ICMP_REPLY_ONLY)) | (
        (proto == ICMPV6) & np.isin(icmp_type, ICMPV6_REPLY_ONLY)
    )
    tcp = (proto == TCP) & (first >= 0)
    flags = np.where(tcp, first, 0).astype(np.int64)
    syn_ack = tcp & ((flags & (SYN | ACK)) == (SYN | ACK))
    refused = (bwd > 0) & (bwd_rst >= bwd)  # the destination only ever answered with RSTs
    swapped = icmp_reply | (syn_ack & ~refused)
    # RST first, or SYN-ACKs the destination refused: a SYN-ACK flood from the source, or the backscatter of a
    # SYN flood against the source that spoofed the destination; the flow cannot tell which, so nobody
    unattributed = tcp & (((flags & (SYN | RST)) == RST) | (syn_ack & refused))
    answered = np.nan_to_num(bwd, nan=0.0) > 0
    self_flow = answered & (src == dst)
    attacker, victim = (
        (np.where(swapped, dst, src), np.where(swapped, src, dst)) if swapped.any() else (src, dst)
    )
    unattributed = unattributed | ~np.fromiter(map(is_host_address, attacker), bool, n)
    return Attribution(attacker, victim, swapped, self_flow, unattributed)


def attribute_flows(flows: pd.DataFrame) -> Attribution:
    """:func:`attribute` over a flow table."""
    src = flows["src_ip"].astype(str).to_numpy(dtype=object)
    dst = flows["dst_ip"].astype(str).to_numpy(dtype=object)
    return attribute(src, dst, numeric(flows))
