"""What every IoT device does besides its main job: resolve names, set its clock, ask the cloud for updates."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from iotguard.lab.network import Host
from iotguard.lab.proto import http, mqtt, tls
from iotguard.lab.sim import Sim
from iotguard.lab.tcp import TcpConn

NTP_NAME = "pool.ntp.org"


def boot(sim: Sim, dev: Host, t: float) -> float:
    """ARP for the gateway, look up the NTP pool, set the clock; returns when done."""
    t = sim.arp(t, dev, sim.net.gateway, force=True)
    t, addresses = sim.resolve(t + 0.002, dev, NTP_NAME)
    server = sim.net.by_ip(addresses[sim.rng("ntp-pick", dev.name).randrange(len(addresses))])
    return sim.ntp_sync(t + 0.001, dev, server)


def cloud_check(sim: Sim, dev: Host, t: float, cloud_name: str, model: str, version: str) -> float:
    """A firmware-update check over HTTP against the vendor's cloud (Connection: close)."""
    rng = sim.rng("ota", dev.name, round(t, 3))
    t, addresses = sim.resolve(t, dev, cloud_name)
    server = sim.net.by_ip(addresses[0])
    conn = TcpConn(sim, dev, server, 80, loss=0.01, rng=rng)
    t = conn.connect(t)
    req = http.request(
        "GET",
        f"/firmware/latest?model={model}&version={version}",
        cloud_name,
        [("User-Agent", f"{model}/{version}"), ("Accept", "application/json")],
    )
    body = json.dumps({"model": model, "latest": version, "update": False, "check_after": 3600}).encode()
    resp = http.response(200, body, server="nginx", close=True)
    t = conn.request(t + 1e-4, req, resp, think=rng.uniform(0.005, 0.03))
    return conn.close(conn.reply_at(t, server, 1e-4), from_client=False)


def tls_session(
    sim: Sim,
    client: Host,
    server: Host,
    t: float,
    server_name: str,
    exchanges: list[tuple[int, int, float]],
    rng: random.Random,
    *,
    port: int = 443,
    close_by_client: bool = True,
    alpn: tuple[str, ...] = ("h2", "http/1.1"),
) -> float:
    """A TLS 1.3 connection: handshake, then (request bytes, response bytes, server think time) exchanges."""
    conn = TcpConn(sim, client, server, port, loss=0.005, rng=rng)
    t = conn.connect(t)
    hello = tls.client_hello(rng, server_name, alpn)
    # ServerHello, then EncryptedExtensions, Certificate, CertificateVerify and Finished (all encrypted)
    flight = tls.server_hello(rng, tls.session_id_of(hello)) + tls.encrypted(rng, rng.randrange(2400, 5200))
    t = conn.request(t + rng.uniform(5e-5, 5e-4), hello, flight, think=rng.uniform(0.002, 0.02))
    t = conn.send(
        conn.reply_at(t, client, rng.uniform(5e-4, 4e-3)),
        True,
        tls.change_cipher_spec() + tls.encrypted(rng, 53),
    )
    for request, response, think in exchanges:
        t = conn.request(
            t + rng.uniform(1e-4, 3e-3), tls.encrypted(rng, request), tls.encrypted(rng, response), think
        )
    t += rng.uniform(0.01, 0.5)
    if close_by_client:
        t = conn.send(t, True, tls.encrypted(rng, 19))  # close_notify alert
        return conn.close(t + rng.uniform(1e-4, 1e-3), from_client=True)
    t = conn.send(t, False, tls.encrypted(rng, 19))
    return conn.close(t + rng.uniform(1e-4, 1e-3), from_client=False)


def cloud_heartbeats(sim: Sim, dev: Host, start: float, end: float, cloud_name: str, interval: float) -> None:
    """Periodic HTTPS check-ins with the vendor cloud (DNS lookup, TLS, a small POST and its answer)."""
    rng = sim.rng("cloud", dev.name)
    server = sim.internet_service(cloud_name, "cloud")
    t = start + rng.uniform(0.2, 1.0) * interval
    while t < end:
        t_dns, _ = sim.resolve(t, dev, cloud_name)
        tls_session(
            sim,
            dev,
            server,
            t_dns + rng.uniform(1e-4, 1e-3),
            cloud_name,
            [(rng.randrange(180, 600), rng.randrange(90, 400), rng.uniform(0.01, 0.08))],
            rng,
            alpn=(),
        )
        t += interval * rng.uniform(0.9, 1.1)


def mqtt_publish(
    conn: TcpConn,
    t: float,
    topic: str,
    payload: bytes,
    qos: int,
    pid: int,
    rng: random.Random,
    *,
    retain: bool = False,
) -> float:
    """A client's PUBLISH with its QoS handshake: none (0), PUBACK (1), or PUBREC, PUBREL, PUBCOMP (2)."""
    if qos == 0:
        return conn.send(t, True, mqtt.publish(topic, payload, retain=retain))
    if qos == 1:
        return conn.request(
            t, mqtt.publish(topic, payload, 1, pid, retain), mqtt.puback(pid), think=rng.uniform(1e-4, 6e-4)
        )
    t = conn.request(
        t, mqtt.publish(topic, payload, 2, pid, retain), mqtt.pubrec(pid), think=rng.uniform(1e-4, 6e-4)
    )
    return conn.request(
        t + rng.uniform(5e-5, 3e-4), mqtt.pubrel(pid), mqtt.pubcomp(pid), think=rng.uniform(1e-4, 4e-4)
    )


def mqtt_deliver(
    conn: TcpConn,
    t: float,
    topic: str,
    payload: bytes,
    qos: int,
    pid: int,
    rng: random.Random,
    think: tuple[float, float] = (1e-4, 1e-3),
) -> float:
    """The broker forwards a PUBLISH to a subscriber, which acknowledges it as its QoS asks (``think``: the
    client's time to answer)."""
    client, broker = conn.c.host, conn.s.host
    t = conn.send(t, False, mqtt.publish(topic, payload, qos, pid))
    if qos == 0:
        return t
    reply = mqtt.puback(pid) if qos == 1 else mqtt.pubrec(pid)
    t = conn.send(conn.reply_at(t, client, rng.uniform(*think)), True, reply)
    if qos == 2:
        t = conn.send(conn.reply_at(t, broker, rng.uniform(5e-5, 3e-4)), False, mqtt.pubrel(pid))
        t = conn.send(conn.reply_at(t, client, rng.uniform(*think)), True, mqtt.pubcomp(pid))
    return t


def mqtt_forwarded(
    sim: Sim,
    conn: TcpConn,
    filters: list[tuple[str, int]],
    t: float,
    end: float,
    keepalive: float,
    rng: random.Random,
    *,
    pid: int = 0,
    before: Callable[[float, float], float | None] | None = None,
) -> tuple[float, float]:
    """A subscriber's session after SUBSCRIBE: the broker forwards every publication in ``sim.publishes`` that
    matches one of ``filters`` (topic filter, QoS; the first match decides) and the client sends PINGREQ after
    each keep-alive without one. ``before(t, at)`` may send the client's own messages before a forward at
    ``at`` (returns when it finished, or None). Returns the time of the last packet and of the last ping.

    Run it after every publisher has run (it reads what they published)."""
    broker = conn.s.host
    last = t
    for pub in sorted(sim.publishes, key=lambda p: p.t):
        qos = next((q for f, q in filters if mqtt.topic_matches(f, pub.topic)), None)
        if pub.t <= t or qos is None:
            continue
        while last + keepalive < pub.t:
            last = max(last + keepalive, t + 1e-3)
            t = conn.request(last, mqtt.pingreq(), mqtt.pingresp(), 2e-4)
        if before is not None and (sent := before(t, pub.t)) is not None:
            t = last = sent
        at = max(pub.t + 2 * broker.delay + rng.uniform(1e-4, 4e-4), t + 1e-4)
        if at >= end:
            break
        if qos:
            pid = pid % 65535 + 1
        t = mqtt_deliver(conn, at, pub.topic, pub.payload, qos, pid, rng)
    return t, last
