"""Port scans (PortScan) by a rogue host on the LAN, the way nmap sends them.

* host discovery first: an ARP request for every address of the subnet (nmap's default on a local network);
* ``syn-scan`` (-sS): raw SYNs from one source port, window 1024, only an MSS option, no DF bit, a random TTL
  between 37 and 59; open ports answer SYN/ACK (and get the scanner kernel's RST), closed ones RST/ACK;
* ``connect-scan`` (-sT): full kernel connections, which nmap resets as soon as they are established;
* ``udp-scan`` (-sU): empty datagrams, or nmap's protocol payloads for well-known ports (NTP, SSDP, CoAP);
  closed ports answer ICMP port unreachable, at most one a second after a short burst on Linux hosts;
* ``version-scan`` (-sV): a SYN scan, then a connection to each open port that reads the banner and sends the
  probe that matches the service (HTTP GET, RTSP OPTIONS, MQTT CONNECT, DNS version.bind over TCP).

Every (scanner, target, technique) gets its own episode.
"""

from __future__ import annotations

import struct

import numpy as np

from iotguard.lab.attacks.common import OPEN, outcome_for, rogue_host, syn_probes, targets_for, windows
from iotguard.lab.network import Host
from iotguard.lab.packets import BROADCAST, ZERO_MAC, arp_frame, icmp_port_unreachable, udp_frame
from iotguard.lab.proto import coap, http, mqtt, ntp, rfb, telnet
from iotguard.lab.sim import Sim, World
from iotguard.lab.tcp import TcpConn

# nmap's most frequently open TCP ports (nmap-services order) plus IoT favourites
TOP_TCP = (
    80,
    23,
    443,
    21,
    22,
    25,
    3389,
    110,
    445,
    139,
    143,
    53,
    135,
    3306,
    8080,
    1723,
    111,
    995,
    993,
    5900,
    1025,
    587,
    8888,
    199,
    1720,
    465,
    548,
    113,
    81,
    6001,
    10000,
    514,
    5060,
    179,
    1026,
    2000,
    8443,
    8000,
    32768,
    554,
    26,
    1433,
    49152,
    2001,
    515,
    8008,
    49154,
    1027,
    5666,
    646,
    5000,
    5631,
    631,
    49153,
    8081,
    2049,
    88,
    79,
    5800,
    106,
    2121,
    1110,
    49155,
    6000,
    513,
    990,
    5357,
    427,
    49156,
    543,
    544,
    5101,
    144,
    7,
    389,
    8009,
    3128,
    444,
    9999,
    5009,
    7070,
    5190,
    3000,
    5432,
    1900,
    3986,
    13,
    1029,
    9,
    5051,
    6646,
    49157,
    1028,
    873,
    1755,
    2717,
    4899,
    9100,
    119,
    37,
    1883,
    8883,
    8123,
    2323,
    7547,
    37777,
    34567,
    9000,
    8001,
    5683,
    502,
    102,
    47808,
    20000,
    4840,
    1911,
    2404,
)
TOP_UDP = (
    631,
    161,
    137,
    123,
    138,
    1434,
    445,
    135,
    67,
    53,
    139,
    500,
    68,
    520,
    1900,
    4500,
    514,
    49152,
    162,
    69,
    5353,
    111,
    49154,
    1701,
    998,
    996,
    997,
    999,
    3283,
    49153,
    1812,
    136,
    2222,
    2049,
    32768,
    5060,
    1025,
    1433,
    3456,
    80,
    20031,
    1026,
    1813,
    1027,
    5683,
)
LABELS = {"syn": "syn-scan", "connect": "connect-scan", "udp": "udp-scan", "version": "version-scan"}
SSDP_SEARCH = b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 3\r\nST: ssdp:all\r\n\r\n'


def _ports(table: tuple[int, ...], count: int, rng) -> list[int]:
    ports = list(dict.fromkeys(table))[:count]
    while len(ports) < count:  # beyond the table: the rest of nmap's list looks random
        port = rng.randrange(1, 10000)
        if port not in ports:
            ports.append(port)
    return ports


def run(sim: Sim, world: World, start: float, end: float, params: dict) -> None:
    rng = sim.rng("portscan")
    npr = sim.nprng("portscan")
    scanner = rogue_host(sim, "rogue-scanner")
    techniques = list(params.get("techniques", ("syn",)))
    lan = [h for h in sim.net.hosts.values() if h.local and h.kind not in ("attacker",) and h is not scanner]
    targets = rng.sample(lan, min(len(lan), int(params.get("hosts", 5))))
    n_ports = int(params.get("ports", 200))
    pps = float(params.get("pps", 150.0))
    t = _discovery(sim, scanner, start, rng)
    for technique, (w0, w1) in zip(techniques, windows(t, end, len(techniques)), strict=True):
        tags = {h.name: sim.episode(scanner.ip, h.ip, LABELS[technique], "PortScan") for h in targets}
        if technique in ("syn", "version"):
            open_found = _syn_scan(
                sim, scanner, targets, _ports(TOP_TCP, n_ports, rng), w0, w1, pps, tags, npr
            )
            if technique == "version":
                _versions(sim, scanner, open_found, w1, tags, rng)
        elif technique == "connect":
            _connect_scan(sim, scanner, targets, _ports(TOP_TCP, n_ports, rng), w0, w1, pps, tags, rng)
        elif technique == "udp":
            _udp_scan(
                sim, scanner, targets, _ports(TOP_UDP, min(n_ports, 100), rng), w0, w1, pps / 4, tags, rng
            )
        else:
            raise ValueError(f"unknown scan technique {technique!r}")


def _discovery(sim: Sim, scanner: Host, t: float, rng) -> float:
    """ARP ping sweep of the whole subnet; returns when it is done."""
    tag = sim.episode(scanner.ip, str(sim.net.subnet), "host-discovery", "PortScan")
    for address in sim.net.subnet.hosts():
        target = sim.net.by_ip(str(address))
        if target is scanner:
            continue
        sim.cap.add(
            t, arp_frame(scanner.mac, BROADCAST, 1, scanner.mac, scanner.ip_b, ZERO_MAC, address.packed), tag
        )
        if target is not None:
            sim.cap.add(
                t + 2 * target.delay + 4e-5,
                arp_frame(target.mac, scanner.mac, 2, target.mac, target.ip_b, scanner.mac, scanner.ip_b),
                tag,
            )
        t += rng.uniform(0.002, 0.006)
    return t + 1.0


def _syn_scan(sim, scanner, targets, ports, start, end, pps, tags, npr) -> list[tuple[Host, int, float]]:
    tgt = targets_for(sim, targets, [], npr)
    which = np.repeat(np.arange(len(targets)), len(ports))
    port_arr = np.tile(np.asarray(ports, dtype=np.int64), len(targets))
    order = npr.permutation(len(which))  # nmap randomises the port order and scans hosts in parallel
    which, port_arr = which[order], port_arr[order]
    n = len(which)
    times = start + np.arange(n) / pps + npr.uniform(0, 0.5 / pps, n)
    keep = times < end
    which, port_arr, times = which[keep], port_arr[keep], times[keep]
    outcome = outcome_for(tgt, which, port_arr, 0.0, 0.0, npr)
    sport = int(npr.integers(32768, 65535))
    ttl = int(npr.integers(37, 60))
    found = []
    for i, host in enumerate(targets):
        sel = np.flatnonzero(which == i)
        if not len(sel):
            continue
        syn_probes(
            sim,
            scanner,
            tgt,
            which[sel],
            port_arr[sel],
            times[sel],
            outcome[sel],
            sport=sport,
            seq=npr.integers(0, 2**32, len(sel)),
            window=1024,
            options=b"\x02\x04\x05\xb4",
            ident=npr.integers(0, 65536, len(sel)),
            tag=tags[host.name],
            df=False,
            probe_ttl=ttl,
            rng=npr,
        )
        found += [(host, int(port_arr[j]), float(times[j])) for j in sel.tolist() if outcome[j] == OPEN]
    return found


def _connect_scan(sim, scanner, targets, ports, start, end, pps, tags, rng) -> None:
    pairs = [(h, p) for h in targets for p in ports]
    rng.shuffle(pairs)
    t = start
    for host, port in pairs:
        if t >= end:
            break
        conn = TcpConn(sim, scanner, host, port, tag=tags[host.name], rng=rng)
        if port in host.tcp_open:
            at = conn.connect(t)
            conn.abort(at + rng.uniform(1e-5, 2e-4), from_client=True)
        else:
            conn.refused(t)
        t += rng.expovariate(pps)


def _udp_payload(port: int, rng) -> bytes:
    if port == 123:
        return ntp.request(0.0)
    if port == 1900:
        return SSDP_SEARCH
    if port == 5683:
        return coap.get(rng.getrandbits(16), b"", ".well-known/core")
    return b""


def _udp_scan(sim, scanner, targets, ports, start, end, pps, tags, rng) -> None:
    for host in targets:
        limiter_tokens, last = 6.0, start  # Linux: icmp_ratelimit, a burst of six then one per second
        t = start + rng.uniform(0, 0.1)
        sport = rng.randrange(32768, 65535)
        order = list(ports)
        rng.shuffle(order)
        for port in order:
            if t >= end:
                break
            payload = _udp_payload(port, rng)
            src_mac, dst_mac = sim.net.macs(scanner, host)
            probe = udp_frame(
                src_mac,
                dst_mac,
                scanner.ip_b,
                host.ip_b,
                sport,
                port,
                payload,
                rng.getrandbits(16),
                rng.randrange(37, 60),
                df=False,
            )
            sim.cap.add(t, probe, tags[host.name])
            at = t + 2 * host.delay + 5e-5
            if port in host.udp_open:
                if port == 5683:
                    links = b"</sensors>;ct=40,</.well-known/core>"
                    answer = coap.content(
                        coap.ACK, int.from_bytes(payload[2:4], "big"), b"", links, fmt=coap.LINK_FORMAT
                    )
                    sim.udp(at, host, scanner, port, sport, answer, tags[host.name])
            else:
                if host.stack.name != "lwip":
                    limiter_tokens = min(6.0, limiter_tokens + (t - last))
                    last = t
                if host.stack.name == "lwip" or limiter_tokens >= 1.0:
                    limiter_tokens -= 1.0
                    sim.cap.add(
                        at,
                        icmp_port_unreachable(
                            host.mac, scanner.mac, host.ip_b, scanner.ip_b, probe, host.ident(), host.ttl
                        ),
                        tags[host.name],
                    )
            t += rng.expovariate(pps)


def _versions(sim, scanner, found, end, tags, rng) -> None:
    """Service detection on every open port found by the SYN scan."""
    t = max(f[2] for f in found) + 0.5 if found else end
    for host, port, _ in found:
        tag = tags[host.name]
        conn = TcpConn(sim, scanner, host, port, tag=tag, rng=rng)
        t = conn.connect(t)
        service = host.tcp_open.get(port, "")
        if service == "ssh":
            t = conn.send(conn.reply_at(t, host, 0.01), False, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2\r\n")
        elif service == "telnet":
            t = conn.send(conn.reply_at(t, host, 0.01), False, telnet.SERVER_HELLO + b"\r\n(none) login: ")
        elif service == "http":
            t = conn.request(
                t + rng.uniform(2.0, 5.0),
                b"GET / HTTP/1.0\r\n\r\n",
                http.response(
                    401,
                    b"<html><body>401 Unauthorized</body></html>",
                    content_type="text/html",
                    server="webserver",
                ),
                0.01,
            )
        elif service == "rtsp":
            t = conn.request(
                t + rng.uniform(2.0, 5.0),
                b"OPTIONS / RTSP/1.0\r\n\r\n",
                b"RTSP/1.0 200 OK\r\nCSeq: 0\r\nPublic: OPTIONS, DESCRIBE, PLAY, PAUSE, SETUP, TEARDOWN, SET_PARAMETER, GET_PARAMETER\r\n\r\n",
                0.01,
            )
        elif service == "mqtt":
            t = conn.request(t + rng.uniform(2.0, 5.0), mqtt.connect("nmap", 0), mqtt.connack(), 0.001)
        elif service == "vnc":  # the server speaks first: its version banner is all nmap needs
            t = conn.send(conn.reply_at(t, host, 0.002), False, rfb.VERSION_38)
        elif service == "dns":
            question = b"\x07version\x04bind\x00\x00\x10\x00\x03"
            query = struct.pack("!HHHHHH", 6, 0x0100, 1, 0, 0, 0) + question
            txt = b"dnsmasq-2.89"
            answer = (
                struct.pack("!HHHHHH", 6, 0x8580, 1, 1, 0, 0)
                + question
                + struct.pack("!HHHIHB", 0xC00C, 16, 3, 0, len(txt) + 1, len(txt))
                + txt
            )
            t = conn.request(
                t + rng.uniform(2.0, 5.0),
                struct.pack("!H", len(query)) + query,
                struct.pack("!H", len(answer)) + answer,
                0.001,
            )
        else:  # no banner, nothing nmap recognises: it gives up after its probes time out
            t += rng.uniform(5.0, 6.0)
        t = conn.abort(t + rng.uniform(1e-3, 0.02), from_client=True) + rng.uniform(0.01, 0.1)
        conn.finish()
