"""Pieces several attacks share: batches of raw SYN probes and the answers their targets send back.

A raw-socket scanner (Mirai's scanner, nmap -sS) sends bare SYNs; a listening port answers SYN/ACK and the
scanner's own kernel, which knows nothing of that connection, answers it with RST; a closed port answers
RST/ACK; an address with nobody behind it stays silent. Everything here is built with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotguard.lab import bulk
from iotguard.lab.network import Host
from iotguard.lab.packets import ACK, RST, SYN, ip
from iotguard.lab.sim import Sim

SILENT, CLOSED, OPEN = 0, 1, 2


@dataclass
class Targets:
    """Probe targets: raw addresses plus how each one answers."""

    addresses: np.ndarray  # (n, 4) uint8
    macs: np.ndarray  # (n, 6) uint8: the target's MAC, or the gateway's for internet targets
    ttl: np.ndarray  # TTL of the target's answers as seen at the capture point
    delay: np.ndarray  # one-way latency of the target
    window: np.ndarray
    mss: np.ndarray
    hosts: list[Host | None]  # the simulated host, None for internet addresses outside the simulation


def targets_for(sim: Sim, hosts: list[Host], internet: list[str], rng: np.random.Generator) -> Targets:
    """Targets for LAN ``hosts`` and bare ``internet`` addresses (behind the gateway, unknown stacks)."""
    n_int = len(internet)
    addresses = [h.ip_b for h in hosts] + [ip(a) for a in internet]
    macs = [h.mac for h in hosts] + [sim.net.gateway.mac] * n_int
    return Targets(
        addresses=np.frombuffer(b"".join(addresses), np.uint8).reshape(-1, 4)
        if addresses
        else np.zeros((0, 4), np.uint8),
        macs=np.frombuffer(b"".join(macs), np.uint8).reshape(-1, 6) if macs else np.zeros((0, 6), np.uint8),
        ttl=np.concatenate(
            ([h.ttl for h in hosts], rng.choice([44, 48, 50, 52, 113, 115, 238, 240], n_int))
        ).astype(np.int64),
        delay=np.concatenate(([h.delay for h in hosts], rng.uniform(0.01, 0.15, n_int))),
        window=np.concatenate(
            (
                [min(h.stack.window, 65535) for h in hosts],
                rng.choice([5840, 14600, 29200, 64240, 65535], n_int),
            )
        ).astype(np.int64),
        mss=np.concatenate(
            ([h.stack.mss for h in hosts], rng.choice([1360, 1400, 1440, 1460], n_int))
        ).astype(np.int64),
        hosts=list(hosts) + [None] * n_int,
    )


def syn_probes(
    sim: Sim,
    scanner: Host,
    targets: Targets,
    which: np.ndarray,
    ports: np.ndarray,
    times: np.ndarray,
    outcome: np.ndarray,
    *,
    sport: np.ndarray | int,
    seq: np.ndarray,
    window: np.ndarray | int,
    options: bytes,
    ident: np.ndarray,
    tag: int,
    df: bool = True,
    probe_ttl: int | None = None,
    rng: np.random.Generator,
) -> None:
    """Probe ``targets[which[i]]:ports[i]`` at ``times[i]``; targets answer per ``outcome`` (SILENT/CLOSED/OPEN)."""
    n = len(which)
    if n == 0:
        return
    addr = targets.addresses[which]
    tmac = targets.macs[which]
    sports = np.broadcast_to(np.asarray(sport, dtype=np.int64), (n,))
    probes = bulk.tcp_frames(
        src_mac=scanner.mac,
        dst_mac=tmac,
        src=scanner.ip_b,
        dst=addr,
        sport=sports,
        dport=ports,
        seq=seq,
        ack=0,
        flags=SYN,
        window=window,
        n=n,
        options=options,
        ident=ident,
        ttl=scanner.ttl if probe_ttl is None else probe_ttl,
        df=df,
    )
    sim.cap.add_frames(times, probes, tag)
    answer_t = times + 2 * targets.delay[which] + rng.uniform(2e-5, 2e-4, n)
    closed = np.flatnonzero(outcome == CLOSED)
    if len(closed):
        rsts = bulk.tcp_frames(
            src_mac=tmac[closed],
            dst_mac=scanner.mac,
            src=addr[closed],
            dst=scanner.ip_b,
            sport=ports[closed],
            dport=sports[closed],
            seq=0,
            ack=(seq[closed] + 1) & 0xFFFFFFFF,
            flags=RST | ACK,
            window=0,
            n=len(closed),
            ident=rng.integers(0, 65536, len(closed)),
            ttl=targets.ttl[which][closed],
        )
        sim.cap.add_frames(answer_t[closed], rsts, tag)
    opened = np.flatnonzero(outcome == OPEN)
    if len(opened):
        m = len(opened)
        isn = rng.integers(0, 2**32, m)
        mss = targets.mss[which][opened]
        opts = np.zeros((m, 4), dtype=np.uint8)
        opts[:, 0] = 2
        opts[:, 1] = 4
        opts[:, 2:4] = mss.astype(">u2").view(np.uint8).reshape(m, 2)
        synacks = bulk.tcp_frames(
            src_mac=tmac[opened],
            dst_mac=scanner.mac,
            src=addr[opened],
            dst=scanner.ip_b,
            sport=ports[opened],
            dport=sports[opened],
            seq=isn,
            ack=(seq[opened] + 1) & 0xFFFFFFFF,
            flags=SYN | ACK,
            window=targets.window[which][opened],
            n=m,
            options=opts,
            ident=rng.integers(0, 65536, m),
            ttl=targets.ttl[which][opened],
        )
        sim.cap.add_frames(answer_t[opened], synacks, tag)
        # the scanner's kernel has no socket for these: it resets them
        resets = bulk.tcp_frames(
            src_mac=scanner.mac,
            dst_mac=tmac[opened],
            src=scanner.ip_b,
            dst=addr[opened],
            sport=sports[opened],
            dport=ports[opened],
            seq=(seq[opened] + 1) & 0xFFFFFFFF,
            ack=0,
            flags=RST,
            window=0,
            n=m,
            ident=rng.integers(0, 65536, m),
            ttl=scanner.ttl,
        )
        sim.cap.add_frames(answer_t[opened] + 2 * scanner.delay + 3e-5, resets, tag)


def outcome_for(
    targets: Targets,
    which: np.ndarray,
    ports: np.ndarray,
    internet_open: float,
    internet_closed: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """How each probe is answered: LAN hosts by their open ports, internet addresses at random."""
    out = np.zeros(len(which), dtype=np.int64)
    draw = rng.random(len(which))
    for i, (w, port) in enumerate(zip(which.tolist(), ports.tolist(), strict=True)):
        host = targets.hosts[w]
        if host is None:
            out[i] = (
                OPEN
                if draw[i] < internet_open
                else (CLOSED if draw[i] < internet_open + internet_closed else SILENT)
            )
        else:
            out[i] = OPEN if port in host.tcp_open else CLOSED
    return out


def rogue_host(sim: Sim, name: str) -> Host:
    """A laptop that joins the LAN to attack it (it sends nothing benign)."""
    from iotguard.lab.network import LINUX

    return sim.net.hosts.get(name) or sim.net.add_local(name, "attacker", "intel", LINUX)


def internet_host(sim: Sim, name: str, kind: str, *, attacker: bool = True, delay: float = 0.04) -> Host:
    """An internet host; attacker infrastructure gets an address from the documentation ranges."""
    from iotguard.lab.network import ATTACKER_RANGES, LINUX

    if name in sim.net.hosts:
        return sim.net.hosts[name]
    rng = sim.rng("internet-host", name)
    block = ATTACKER_RANGES[rng.randrange(len(ATTACKER_RANGES))] if attacker else None
    return sim.net.add_external(name, kind, sim.net.public_address(rng, block=block), LINUX, delay=delay)


def windows(start: float, end: float, parts: int, gap: float = 0.1) -> list[tuple[float, float]]:
    """Split ``[start, end)`` into ``parts`` consecutive windows with a small pause between them."""
    span = (end - start) / max(parts, 1)
    return [(start + i * span, start + (i + 1) * span - gap * span) for i in range(parts)]
