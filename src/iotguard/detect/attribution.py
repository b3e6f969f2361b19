"""Who is the attacker of a flagged flow? Usually the flow's source (the host that sent its first packet); not
for flows that are only someone's *answer* to traffic of the other side.

An ICMP error (destination unreachable, time exceeded, ...) is sent by the host that *received* something:
a UDP or version scan makes every probed victim answer with ICMP port unreachable, so those ICMP flows start
at the victim and end at the scanner. A flow whose first packet is an ICMP reply (echo reply, timestamp reply)
was opened by the replier. Scored as the attack (the pattern is the scan's, after all), such a flow would name
the victim as the attacker, and a block policy would cut the victim off. So these *reply-only* flows are
attributed to their peer: the alert's attacker (``src_ip``) is the flow's destination and its victim the
flow's source.

TCP and UDP flows are attributed to their source: the flow meter orients a flow by its first packet, which
for a connection is the initiator's.

A two-way flow between an address and itself (*self flows*) names no attacker at all. A host's traffic to itself
never reaches the wire, so on a capture such a flow means addresses were rewritten (an anonymised trace maps
both ends to one address) or the capture is of a loopback interface; either way the attacker would be the
victim, and a block would cut the victim off. The detection engine drops alerts on them (counted as
``self_flows``). A one-way flow from an address to itself (a LAND attack: spoofed packets whose source is the
victim) still alerts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ICMP = 1
ICMPV6 = 58
ICMP_REPLY_ONLY = (0, 3, 4, 5, 11, 12, 14, 16, 18)
"""ICMPv4 types only ever sent in answer to another host's packet: echo reply (0), destination unreachable
(3), source quench (4), redirect (5), time exceeded (11), parameter problem (12), timestamp reply (14),
information reply (16), address mask reply (18)."""
ICMPV6_REPLY_ONLY = (1, 2, 3, 4, 129)
"""ICMPv6: destination unreachable (1), packet too big (2), time exceeded (3), parameter problem (4), echo
reply (129)."""


def reply_only(flows: pd.DataFrame) -> np.ndarray:
    """True for each flow record that is only an answer to its destination's traffic (see the module docs)."""
    n = len(flows)
    if n == 0 or "protocol" not in flows.columns or "icmp_type" not in flows.columns:
        return np.zeros(n, dtype=bool)
    proto = pd.to_numeric(flows["protocol"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    icmp_type = pd.to_numeric(flows["icmp_type"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return ((proto == ICMP) & np.isin(icmp_type, ICMP_REPLY_ONLY)) | (
        (proto == ICMPV6) & np.isin(icmp_type, ICMPV6_REPLY_ONLY)
    )


def attacker_victim(flows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per flow record: the attacker and victim addresses an alert on it names, and whether they were swapped
    (the record is reply-only)."""
    src = flows["src_ip"].astype(str).to_numpy(dtype=object)
    dst = flows["dst_ip"].astype(str).to_numpy(dtype=object)
    swapped = reply_only(flows)
    if not swapped.any():
        return src, dst, swapped
    return np.where(swapped, dst, src), np.where(swapped, src, dst), swapped


def self_flows(flows: pd.DataFrame) -> np.ndarray:
    """True for each two-way flow record whose source and destination address are the same (see the module
    docs)."""
    n = len(flows)
    if n == 0 or "bwd_packets" not in flows.columns:
        return np.zeros(n, dtype=bool)
    same = flows["src_ip"].astype(str).to_numpy() == flows["dst_ip"].astype(str).to_numpy()
    if not same.any():
        return same
    answered = pd.to_numeric(flows["bwd_packets"], errors="coerce").fillna(0).to_numpy() > 0
    return same & answered
