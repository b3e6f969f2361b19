"""Which MAC address each local IPv4 address uses, read from a batch of Ethernet frames (vectorised).

Only what the device inventory needs: the source MAC and source IPv4 address of untagged Ethernet IPv4
frames, and the sender MAC and IP of ARP packets (where ARP spoofing shows). Everything else is ignored.
"""

from __future__ import annotations

import numpy as np

from iotguard.capture.batch import LINKTYPE_ETHERNET, PacketBatch

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806


def _u16(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (data[at].astype(np.uint32) << 8) | data[at + 1]


def _gather(data: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """Big-endian integers of ``n`` bytes starting at each offset in ``at``."""
    out = np.zeros(len(at), dtype=np.uint64)
    for k in range(n):
        out = (out << np.uint64(8)) | data[at + k].astype(np.uint64)
    return out


def mac_pairs(batch: PacketBatch, limit: int = 4096) -> list[tuple[str, str, float, bool]]:
    """Distinct (IPv4 address, MAC, last time seen, seen in ARP) in ``batch`` (at most ``limit``)."""
    if len(batch) == 0:
        return []
    eth = (batch.linktype == LINKTYPE_ETHERNET) & (batch.caplen >= 42)
    if not eth.any():
        return []
    off = batch.offset[eth]
    ts = batch.ts_us[eth]
    data = batch.data
    etype = _u16(data, off + 12)
    ipv4 = etype == ETH_IPV4
    arp = (etype == ETH_ARP) & (data[off + 14 + 7] <= 2)  # ARP request or reply with 6-byte MAC, 4-byte IP
    # source MAC at 6; IPv4 source address at 14 + 12; ARP sender MAC at 14 + 8, sender IP at 14 + 14
    mac = np.concatenate([_gather(data, off[ipv4] + 6, 6), _gather(data, off[arp] + 22, 6)])
    ip = np.concatenate([_gather(data, off[ipv4] + 26, 4), _gather(data, off[arp] + 28, 4)])
    when = np.concatenate([ts[ipv4], ts[arp]])
    from_arp = np.concatenate([np.zeros(int(ipv4.sum()), bool), np.ones(int(arp.sum()), bool)])
    if len(mac) == 0:
        return []
    keep = (ip != 0) & ((mac >> np.uint64(40)) & np.uint64(1) == 0)  # not 0.0.0.0, not a multicast MAC
    mac, ip, when, from_arp = mac[keep], ip[keep], when[keep], from_arp[keep]
    # Sort by pair, then ARP first, then latest first, and keep the first row of each pair (so an ARP
    # sighting wins). A plain lexsort: np.unique(axis=0) sorts rows as records, which is far slower.
    order = np.lexsort((-when, ~from_arp, mac, ip))
    ip_o, mac_o = ip[order], mac[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (ip_o[1:] != ip_o[:-1]) | (mac_o[1:] != mac_o[:-1])
    picked = order[new][:limit]
    out = []
    for i in picked.tolist():
        a = int(ip[i])
        m = int(mac[i])
        out.append(
            (
                f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}",
                ":".join(f"{(m >> s) & 255:02x}" for s in range(40, -8, -8)),
                int(when[i]) / 1e6,
                bool(from_arp[i]),
            )
        )
    return out
