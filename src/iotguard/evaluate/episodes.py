"""Did detection catch each attack episode? Incidents matched against ground truth (``core.episodes``).

An episode counts as detected when an incident overlaps its time window (give or take ``slack`` seconds)
and names its attacker among the incident's sources (with its victim among the incident's victims, unless
the episode's victim is ``*``), or, seen from the other side, names its victim as the source and its
attacker among the victims (a reply flow scored as the attack). ARP-only episodes have no IP flows and can
only be caught by something that reads ARP; they are reported like the others.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from iotguard.core.episodes import Episode
from iotguard.core.records import Alert, Incident


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    episode: Episode
    incident_id: int | None
    """The earliest matching incident, or None when the episode was missed."""
    delay: float | None
    """Seconds from the episode's start to that incident's first alert (negative within the slack)."""

    @property
    def detected(self) -> bool:
        return self.incident_id is not None


def address_in(address: str, spec: str) -> bool:
    """``address`` is in the network ``spec`` (``*``: any address); False for what is not an address."""
    if spec == "*":
        return True
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(spec, strict=False)
    except ValueError:
        return False


def _names(episode: Episode, sources: Sequence[str], victims: Sequence[str]) -> bool:
    forward = any(address_in(s, episode.attacker) for s in sources) and (
        episode.victim == "*" or any(address_in(d, episode.victim) for d in victims)
    )
    backward = any(address_in(s, episode.victim) for s in sources) and any(
        address_in(d, episode.attacker) for d in victims
    )
    return forward or backward


def _matches(episode: Episode, incident: Incident, macs: Mapping[str, str]) -> bool:
    sources = [macs.get(s, s) for s in incident.src_ips or [incident.src_ip]]
    return _names(episode, sources, incident.dest_ips)


def match_episodes(
    episodes: Sequence[Episode],
    incidents: Sequence[Incident],
    slack: float = 5.0,
    alerts: Sequence[Alert] | None = None,
    macs: Mapping[str, str] | None = None,
) -> list[EpisodeResult]:
    """One result per episode, in the episodes' order.

    The delay is measured to the first alert of the matching incident; with ``alerts``, to the first alert
    inside the episode's window that names the episode's hosts, which is the honest detection delay when
    the incident had already been opened by an earlier episode of the same attacker. ``macs``: the ground
    truth's MAC -> address table (the lab's hosts): an ARP spoofer may never send an IP packet, so the
    inventory names it by its MAC, and the check credits the address that MAC belongs to."""
    macs = macs or {}
    results = []
    for ep in episodes:
        hits = [
            inc
            for inc in incidents
            if inc.last_seen >= ep.start - slack
            and inc.first_seen <= ep.end + slack
            and _matches(ep, inc, macs)
        ]
        first = min(hits, key=lambda i: i.first_seen, default=None)
        delay = first.first_seen - ep.start if first is not None else None
        if first is not None and alerts is not None:
            own = [
                a.timestamp
                for a in alerts
                if ep.start - slack <= a.timestamp <= ep.end + slack
                and _names(ep, [macs.get(a.src_ip, a.src_ip)], [a.dest_ip] if a.dest_ip else [])
            ]
            if own:
                delay = min(own) - ep.start
        results.append(EpisodeResult(ep, first.id if first is not None else None, delay))
    return results
