"""ARP spoofing (Spoofing, ``arp-spoofing``): arpspoof-style cache poisoning by a rogue LAN host.

Every two seconds the attacker tells each victim that the gateway's address is at the attacker's MAC, and tells
the gateway the same about each victim (``arpspoof -r``); when it stops it re-announces the true bindings.
Only ARP frames are produced: there are no IP flows to label, so flow-based models cannot see this attack. The
episode is written with the attacker's own address (which the spoofed frames never carry) and the victim's;
detect it from ARP itself (one IP address announced by two MACs: Wireshark's ``arp.duplicate-address-detected``).
"""

from __future__ import annotations

from iotguard.lab.attacks.common import rogue_host
from iotguard.lab.packets import arp_frame
from iotguard.lab.sim import Sim, World


def run(sim: Sim, world: World, start: float, end: float, params: dict) -> None:
    rng = sim.rng("arp-spoofing")
    attacker = rogue_host(sim, "rogue-arp")
    gw = sim.net.gateway
    pool = [d for d in world.devices]
    victims = rng.sample(pool, min(len(pool), int(params.get("victims", 2))))
    for victim in victims:
        tag = sim.episode(attacker.ip, victim.ip, "arp-spoofing", "Spoofing")
        gw_tag = sim.episode(attacker.ip, gw.ip, "arp-spoofing", "Spoofing")
        t = start + rng.uniform(0, 1)
        while t < end:
            sim.cap.add(
                t, arp_frame(attacker.mac, victim.mac, 2, attacker.mac, gw.ip_b, victim.mac, victim.ip_b), tag
            )
            sim.cap.add(
                t + 2e-4,
                arp_frame(attacker.mac, gw.mac, 2, attacker.mac, victim.ip_b, gw.mac, gw.ip_b),
                gw_tag,
            )
            t += 2.0 + rng.uniform(-0.01, 0.01)
        for k in range(3):  # cleanup: the true bindings again
            at = end + k * 1.0
            sim.cap.add(
                at, arp_frame(attacker.mac, victim.mac, 2, gw.mac, gw.ip_b, victim.mac, victim.ip_b), tag
            )
            sim.cap.add(
                at + 2e-4,
                arp_frame(attacker.mac, gw.mac, 2, victim.mac, victim.ip_b, gw.mac, gw.ip_b),
                gw_tag,
            )
