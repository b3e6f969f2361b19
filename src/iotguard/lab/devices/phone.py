"""Household phones and tablets: the non-IoT traffic every home network also carries.

People browse in bursts: a page load resolves the site and its CDNs, opens several TLS connections at once and
fetches objects of very different sizes; then the reader pauses, and sometimes the screen goes off for a few
minutes. In the background, apps check in with their servers over HTTPS every few minutes.
"""

from __future__ import annotations

import math

from iotguard.lab.devices.common import tls_session
from iotguard.lab.network import Host
from iotguard.lab.sim import Sim

SITES = (
    ("en.wikipedia.org", ("upload.wikimedia.org",)),
    ("www.bbc.co.uk", ("static.files.bbci.co.uk", "ichef.bbci.co.uk")),
    ("github.com", ("github.githubassets.com", "avatars.githubusercontent.com")),
    ("www.youtube.com", ("i.ytimg.com", "yt3.ggpht.com")),
    ("www.reddit.com", ("www.redditstatic.com", "preview.redd.it")),
    ("weather.com", ("s.w-x.co",)),
    ("www.amazon.com", ("m.media-amazon.com",)),
    ("www.theguardian.com", ("i.guim.co.uk", "assets.guim.co.uk")),
)
THIRD_PARTY = (
    "fonts.googleapis.com",
    "fonts.gstatic.com",
    "www.google-analytics.com",
    "www.googletagmanager.com",
    "securepubads.g.doubleclick.net",
    "connect.facebook.net",
    "cdn.jsdelivr.net",
    "cdnjs.cloudflare.com",
    "static.cloudflareinsights.com",
    "consent.cookiebot.com",
)
APPS = (
    "android.clients.google.com",
    "graph.facebook.com",
    "api.openweathermap.org",
    "clients4.google.com",
    "gateway.icloud.com",
)


def simulate(sim: Sim, phone: Host, start: float, end: float) -> None:
    rng = sim.rng("phone", phone.name)
    t = sim.arp(start, phone, sim.net.gateway)
    # background app check-ins
    at = t + rng.uniform(5, 120)
    while at < end:
        name = rng.choice(APPS)
        t_dns, _ = sim.resolve(at, phone, name)
        tls_session(
            sim,
            phone,
            sim.internet_service(name),
            t_dns + 2e-4,
            name,
            [(rng.randrange(300, 1500), rng.randrange(200, 6000), rng.uniform(0.02, 0.2))],
            rng,
        )
        at += rng.uniform(40, 240)
    # browsing
    t += rng.uniform(0, 40)
    while t < end:
        if rng.random() < 0.15:  # screen off for a while
            t += rng.uniform(60, 240)
            continue
        site, cdns = SITES[rng.randrange(len(SITES))]
        t_page = _page(sim, phone, site, cdns, t, rng)
        t = t_page + rng.expovariate(1 / 15)


def _page(sim: Sim, phone: Host, site: str, cdns: tuple[str, ...], t: float, rng) -> float:
    done = t
    t_dns, _ = sim.resolve(t, phone, site)
    names = [site] * rng.randrange(1, 3) + [c for c in cdns for _ in range(rng.randrange(1, 3))]
    names += rng.sample(THIRD_PARTY, rng.randrange(2, 6))  # fonts, analytics, ads, consent
    for k, name in enumerate(names):
        t_name = t_dns if name == site else sim.resolve(t_dns + 0.05 + 0.002 * k, phone, name)[0]
        exchanges = [
            (
                rng.randrange(250, 900),
                int(min(400_000, max(300, math.exp(rng.gauss(8.3, 1.3))))),
                rng.uniform(0.005, 0.15),
            )
            for _ in range(rng.randrange(1, 5))
        ]
        finish = tls_session(
            sim,
            phone,
            sim.internet_service(name),
            t_name + rng.uniform(1e-4, 0.03),
            name,
            exchanges,
            rng,
            close_by_client=rng.random() < 0.6,
        )
        done = max(done, finish)
    return done
