"""Checks that a generated capture's ground truth agrees with its packets.

The flow labeller gives a flow the first episode whose window overlaps it and whose attacker and victim match
the flow's two endpoints. Labels are therefore exact when

1. every episode has packets, and every IPv4 packet of an episode is between its attacker and its victim;
2. no benign packet is between the attacker and the victim of any episode (at any time), so no benign flow
   can be claimed by an episode;
3. hosts that exist only to attack (rogue LAN hosts, attacker infrastructure on the internet) send and
   receive nothing benign.

:func:`label_problems` returns a description of every violation (an empty list when all hold).
"""

from __future__ import annotations

import ipaddress

import numpy as np

from iotguard.lab.generator import Built
from iotguard.lab.pcap import Packets

ATTACK_ONLY_KINDS = ("attacker", "cnc", "target")  # rogue hosts, attacker infrastructure, flood targets


def endpoints(packets: Packets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IPv4 source and destination of every packet as uint32 (0 where the frame is not IPv4), and the mask."""
    frames = packets.frames()
    is_ip = np.fromiter((f[12:14] == b"\x08\x00" for f in frames), dtype=bool, count=len(frames))
    heads = b"".join(f[26:34] if ip else b"\x00" * 8 for f, ip in zip(frames, is_ip.tolist(), strict=True))
    pairs = np.frombuffer(heads, dtype=">u4").reshape(-1, 2).astype(np.uint32)
    return pairs[:, 0], pairs[:, 1], is_ip


def _matcher(spec: str):
    if spec == "*":
        return 0, 0
    net = ipaddress.IPv4Network(spec, strict=False)
    return int(net.network_address), int(net.netmask)


def _match(addresses: np.ndarray, spec: str) -> np.ndarray:
    value, mask = _matcher(spec)
    return (addresses & np.uint32(mask)) == np.uint32(value)


def label_problems(built: Built) -> list[str]:
    packets = built.packets
    src, dst, is_ip = endpoints(packets)
    tags = packets.tags
    problems: list[str] = []
    benign_ip = is_ip & (tags == 0)
    for tag, ep in zip(built.tags, built.episodes, strict=True):
        mine = tags == tag
        if not mine.any():
            problems.append(f"episode {ep.label} {ep.attacker} -> {ep.victim} has no packets")
            continue
        ip_mine = mine & is_ip
        fwd = _match(src, ep.attacker) & _match(dst, ep.victim)
        rev = _match(dst, ep.attacker) & _match(src, ep.victim)
        stray = ip_mine & ~(fwd | rev)
        if stray.any():
            problems.append(
                f"episode {ep.label} {ep.attacker} -> {ep.victim}: {int(stray.sum())} of its packets are between other hosts"
            )
        claimed = benign_ip & (fwd | rev)
        if claimed.any():
            problems.append(
                f"episode {ep.label} {ep.attacker} -> {ep.victim} would claim {int(claimed.sum())} benign packets"
            )
    for host in built.hosts:
        if host.kind in ATTACK_ONLY_KINDS:
            address = np.uint32(int(ipaddress.IPv4Address(host.ip)))
            benign = benign_ip & ((src == address) | (dst == address))
            if benign.any():
                problems.append(
                    f"attacker {host.name} ({host.ip}) appears in {int(benign.sum())} benign packets"
                )
    return problems
