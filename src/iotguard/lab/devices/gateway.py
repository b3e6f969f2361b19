"""The home router: default gateway and DNS resolver for the LAN.

Its resolver and ARP replies are produced where devices use them (:meth:`Sim.resolve`, :meth:`Sim.arp`); this
module adds the router's own traffic: it refreshes its neighbour cache with unicast ARP requests, as Linux
routers do for hosts that are talking to the internet.
"""

from __future__ import annotations

from iotguard.lab.network import Host
from iotguard.lab.packets import ZERO_MAC, arp_frame
from iotguard.lab.sim import Sim


def simulate(sim: Sim, gateway: Host, clients: list[Host], start: float, end: float) -> None:
    rng = sim.rng("gateway")
    for host in clients:
        t = start + rng.uniform(20, 90)
        while t < end:
            sim.cap.add(
                t, arp_frame(gateway.mac, host.mac, 1, gateway.mac, gateway.ip_b, ZERO_MAC, host.ip_b)
            )
            t_reply = t + 2 * host.delay + 4e-5
            sim.cap.add(
                t_reply, arp_frame(host.mac, gateway.mac, 2, host.mac, host.ip_b, gateway.mac, gateway.ip_b)
            )
            t += rng.uniform(45, 120)
