"""The hosts a real site has besides its IoT devices (the ``site`` scenario): PCs, an admin, a monitor.

* **PCs** browse the web over HTTPS and plain HTTP: a page resolves its site, opens one to six keep-alive
  connections and fetches objects of very different sizes on them (some answered 304 Not Modified), now and
  then a download of a few megabytes; the server closes an idle connection after its keep-alive timeout.
* An **admin workstation** opens SSH sessions to the hub, the recorder and the router (banners, the
  cleartext key exchange, then encrypted packets: a password, a shell, commands typed one keystroke per
  packet and echoed back, their output) and telnet sessions to the devices that offer it (a login, commands
  typed and echoed character by character, the shell's answers), and pings hosts (``ping -c 4``).
* A **monitoring server** checks every host once a minute: one ping each and a TCP connect to each of its
  services, closed again at once without data (what Nagios' ``check_tcp`` or Uptime Kuma do).
"""

from __future__ import annotations

import math
import random
import struct

from iotguard.lab.devices.common import tls_session
from iotguard.lab.network import Host
from iotguard.lab.packets import icmp_frame
from iotguard.lab.proto import http, ssh, telnet
from iotguard.lab.proto.jpeg import jpeg
from iotguard.lab.sim import Sim
from iotguard.lab.tcp import TcpConn

HTTP_SITES = (
    "www.bro.org",
    "neverssl.com",
    "www.columbia.edu",
    "httpforever.com",
    "www.testingmcafeesites.com",
    "archive.ubuntu.com",
    "intranet.site.example",
    "www.example.org",
)
HTTPS_SITES = ("www.wikipedia.org", "github.com", "docs.python.org", "outlook.office365.com", "www.bbc.com")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
)
OBJECT_TYPES = (
    ("/static/app.{}.js", "application/javascript"),
    ("/static/style.{}.css", "text/css"),
    ("/images/photo-{}.jpg", "image/jpeg"),
    ("/images/thumb-{}.jpg", "image/jpeg"),
    ("/fonts/font-{}.woff2", "font/woff2"),
)
COMMANDS = (
    ("uptime", 70),
    ("df -h", 600),
    ("free -m", 240),
    ("ls -la", 900),
    ("ps aux", 6000),
    ("tail -n 50 /var/log/syslog", 5200),
    ("systemctl status mosquitto", 1100),
    ("ip addr", 1300),
    ("cat /etc/hostname", 12),
    ("top -bn1 | head -20", 1600),
    ("journalctl -u homeassistant -n 30", 4200),
)
BUSYBOX_COMMANDS = (
    ("ps", 900),
    ("ifconfig", 800),
    ("cat /proc/uptime", 20),
    ("ls /mnt/mtd", 200),
    ("free", 210),
)


# -- ICMP echo ---------------------------------------------------------------------------------------------
WINDOWS_ECHO = b"abcdefghijklmnopqrstuvwabcdefghi"


def echo_data(src: Host, unix_time: float) -> bytes:
    """An echo request's data as the sender's ``ping`` fills it by default.

    Windows: 32 letters. Linux (iputils): 56 bytes, the send time as a 64-bit ``struct timeval`` (seconds and
    microseconds, 8 bytes each, little-endian) and then the bytes 0x10 .. 0x37.
    """
    if src.stack.name == "windows":
        return WINDOWS_ECHO
    sec = int(unix_time)
    return struct.pack("<qq", sec, int((unix_time - sec) * 1e6)) + bytes(range(0x10, 0x38))


def ping(
    sim: Sim, src: Host, dst: Host, t: float, count: int, rng: random.Random, *, interval: float = 1.0
) -> float:
    """``ping -c count``: echo requests every ``interval`` seconds, each answered; returns the last reply's time."""
    ident = rng.getrandbits(16)
    src_mac, dst_mac = sim.net.macs(src, dst)
    done = t
    for seq in range(1, count + 1):
        at = t + (seq - 1) * interval * (1 + rng.uniform(-0.002, 0.002))
        rest = struct.pack("!HH", ident, seq) + echo_data(src, sim.base_unix + at)
        sim.cap.add(at, icmp_frame(src_mac, dst_mac, src.ip_b, dst.ip_b, 8, 0, rest, src.ident(), src.ttl))
        done = at + 2 * dst.delay + rng.uniform(2e-5, 2e-4)
        sim.cap.add(done, icmp_frame(dst_mac, src_mac, dst.ip_b, src.ip_b, 0, 0, rest, dst.ident(), dst.ttl))
    return done


# -- web browsing --------------------------------------------------------------------------------------------
def _object_size(rng: random.Random, html: bool) -> int:
    mean = 9.6 if html else 8.4
    return int(min(2_000_000, max(200, math.exp(rng.gauss(mean, 1.2)))))


def _http_page(sim: Sim, pc: Host, site: str, t: float, rng: random.Random, agent: str) -> float:
    """One page over plain HTTP/1.1: the HTML, then its objects over up to six keep-alive connections."""
    t_dns, _ = sim.resolve(t, pc, site)
    server = sim.internet_service(site)
    n_objects = rng.randrange(0, 25)
    n_conns = max(1, min(6, 1 + n_objects // 3))
    done = t_dns
    for k in range(n_conns):
        conn = TcpConn(sim, pc, server, 80, loss=0.005, rng=rng)
        at = conn.connect(t_dns + (0.0 if k == 0 else rng.uniform(0.05, 0.4)))
        paths: list[tuple[str, str, bool]] = [("/", "text/html", True)] if k == 0 else []
        for _ in range(k, n_objects, n_conns):
            pattern, ctype = OBJECT_TYPES[rng.randrange(len(OBJECT_TYPES))]
            paths.append((pattern.format(f"{rng.getrandbits(24):06x}"), ctype, False))
        for path, ctype, html in paths:
            req = http.request(
                "GET",
                path,
                site,
                [
                    ("User-Agent", agent),
                    ("Accept", "text/html,*/*;q=0.8" if html else "*/*"),
                    ("Accept-Encoding", "gzip, deflate"),
                    ("Connection", "keep-alive"),
                ],
            )
            if not html and rng.random() < 0.3:
                resp = http.response(304, b"", ctype, server="nginx", close=False)
            else:
                size = _object_size(rng, html)
                body = jpeg(rng, size) if ctype == "image/jpeg" else rng.randbytes(size)
                resp = http.response(200, body, ctype, server="Apache/2.4.58 (Ubuntu)", close=False)
            at = conn.request(at + rng.uniform(1e-4, 5e-3), req, resp, think=rng.uniform(0.002, 0.08))
        if rng.random() < 0.7:  # the server's keep-alive timeout ends the idle connection
            done = max(done, conn.close(at + rng.uniform(5.0, 15.0), from_client=False))
        else:  # the browser moves on and closes it
            done = max(done, conn.close(at + rng.uniform(0.5, 4.0), from_client=True))
    return done


def _download(sim: Sim, pc: Host, t: float, rng: random.Random, agent: str) -> float:
    site = "archive.ubuntu.com" if rng.random() < 0.5 else "download.site.example"
    t_dns, _ = sim.resolve(t, pc, site)
    conn = TcpConn(sim, pc, sim.internet_service(site), 80, loss=0.002, rng=rng)
    at = conn.connect(t_dns)
    req = http.request("GET", f"/pool/pkg-{rng.getrandbits(20):05x}.deb", site, [("User-Agent", agent)])
    body = rng.randbytes(rng.randrange(500_000, 6_000_000))
    at = conn.request(
        at + 1e-4, req, http.response(200, body, "application/octet-stream", server="Apache"), 0.01
    )
    return conn.close(at + rng.uniform(1e-3, 0.05), from_client=True)


def browse(sim: Sim, pc: Host, start: float, end: float) -> None:
    """A person at a PC: pages over HTTP and HTTPS with reading pauses, away from the desk now and then."""
    rng = sim.rng("pc-browse", pc.name)
    agent = USER_AGENTS[rng.randrange(len(USER_AGENTS))]
    t = sim.arp(start + rng.uniform(0, 30), pc, sim.net.gateway)
    while t < end:
        roll = rng.random()
        if roll < 0.1:  # away from the desk
            t += rng.uniform(60, 400)
            continue
        if roll < 0.55:
            t = _http_page(sim, pc, HTTP_SITES[rng.randrange(len(HTTP_SITES))], t, rng, agent)
        elif roll < 0.6:
            t = _download(sim, pc, t, rng, agent)
        else:
            site = HTTPS_SITES[rng.randrange(len(HTTPS_SITES))]
            t_dns, _ = sim.resolve(t, pc, site)
            exchanges = [
                (rng.randrange(300, 1200), _object_size(rng, k == 0), rng.uniform(0.01, 0.15))
                for k in range(rng.randrange(1, 8))
            ]
            t = tls_session(sim, pc, sim.internet_service(site), t_dns + 2e-4, site, exchanges, rng)
        t += rng.expovariate(1 / 20)


# -- administration ------------------------------------------------------------------------------------------
def _typed(rng: random.Random, text: str) -> list[float]:
    """Gaps before each keystroke of ``text`` (and Enter): a person typing."""
    return [rng.uniform(0.06, 0.35) for _ in range(len(text) + 1)]


def ssh_session(sim: Sim, client: Host, server: Host, t: float, rng: random.Random) -> float:
    """An interactive SSH login: key exchange, password, a shell, a few commands, exit."""
    conn = TcpConn(sim, client, server, 22, loss=0.003, rng=rng)
    t = conn.connect(t)
    server_sw = ssh.SERVERS[2] if server.stack.name != "linux" else ssh.SERVERS[rng.randrange(2)]
    client_sw = ssh.CLIENTS[1] if client.stack.name != "windows" else ssh.CLIENTS[2 + rng.randrange(2)]
    t = conn.send(conn.reply_at(t, server, rng.uniform(1e-3, 8e-3)), False, ssh.banner(server_sw))
    t = conn.send(
        conn.reply_at(t, client, 2e-4), True, ssh.banner(client_sw) + ssh.kexinit(rng, server=False)
    )
    t = conn.send(conn.reply_at(t, server, 3e-4), False, ssh.kexinit(rng, server=True))
    t = conn.request(
        t + rng.uniform(2e-4, 1e-3),
        ssh.ecdh_init(rng),
        ssh.ecdh_reply(rng) + ssh.newkeys(rng),
        rng.uniform(1e-3, 6e-3),
    )
    t = conn.send(t + 2e-4, True, ssh.newkeys(rng))
    t = conn.request(t + 2e-4, ssh.encrypted(rng, 17), ssh.encrypted(rng, 17), 2e-4)  # ssh-userauth
    t = conn.request(t + 2e-4, ssh.encrypted(rng, 48), ssh.encrypted(rng, 30), 5e-4)  # method "none" refused
    t = conn.request(
        t + rng.uniform(2.0, 8.0), ssh.encrypted(rng, rng.randrange(60, 90)), ssh.encrypted(rng, 1), 0.02
    )
    t = conn.request(t + 1e-3, ssh.encrypted(rng, 24), ssh.encrypted(rng, 16), 3e-4)  # channel open
    t = conn.send(t + 1e-4, True, ssh.encrypted(rng, rng.randrange(60, 110)))  # pty-req, env, shell
    t = conn.send(conn.reply_at(t, server, 0.01), False, ssh.encrypted(rng, rng.randrange(300, 1200)))  # motd
    commands = COMMANDS if server.stack.name == "linux" else BUSYBOX_COMMANDS
    for _ in range(rng.randrange(1, 9)):
        command, output = commands[rng.randrange(len(commands))]
        t += rng.uniform(1.0, 25.0)  # reading, thinking
        for gap in _typed(rng, command):
            t = conn.send(t + gap, True, ssh.encrypted(rng, 10))
            t = conn.send(conn.reply_at(t, server, rng.uniform(5e-5, 3e-4)), False, ssh.encrypted(rng, 10))
        size = max(20, int(output * rng.uniform(0.5, 1.5)))
        t = conn.send(conn.reply_at(t, server, rng.uniform(2e-3, 0.05)), False, ssh.encrypted(rng, size))
    for gap in _typed(rng, "exit"):
        t = conn.send(t + gap, True, ssh.encrypted(rng, 10))
        t = conn.send(conn.reply_at(t, server, 1e-4), False, ssh.encrypted(rng, 10))
    t = conn.send(conn.reply_at(t, server, 2e-3), False, ssh.encrypted(rng, 60))  # exit-status, eof, close
    t = conn.send(conn.reply_at(t, client, 2e-4), True, ssh.encrypted(rng, 16))
    return conn.close(t + rng.uniform(1e-4, 2e-3), from_client=rng.random() < 0.5)


def _type_line(
    conn: TcpConn, server: Host, t: float, rng: random.Random, text: str, *, echo: bool = True
) -> float:
    """A line typed into telnet, one keystroke per packet and Enter as CR NUL; the server echoes each key
    (CR as CR LF) unless it is a password."""
    for gap, ch in zip(_typed(rng, text), text + "\r", strict=True):
        t = conn.send(t + gap, True, ch.encode() if ch != "\r" else b"\r\x00")
        if echo:
            t = conn.send(conn.reply_at(t, server, 2e-4), False, ch.encode() if ch != "\r" else b"\r\n")
    return t


def telnet_session(sim: Sim, client: Host, server: Host, t: float, rng: random.Random) -> float:
    """A telnet login to a device's BusyBox shell: options, user and password, a few commands, exit."""
    conn = TcpConn(sim, client, server, 23, loss=0.003, rng=rng)
    t = conn.connect(t)
    iac = telnet
    t = conn.send(conn.reply_at(t, server, 2e-3), False, iac.SERVER_HELLO)
    reply = bytes(
        (iac.IAC, iac.DO, iac.ECHO, iac.IAC, iac.WILL, iac.NAWS, iac.IAC, iac.DO, iac.SGA)
        + (iac.IAC, iac.SB, iac.NAWS, 0, 120, 0, 40, iac.IAC, iac.SE)
    )
    t = conn.send(conn.reply_at(t, client, 3e-4), True, reply)
    t = conn.send(conn.reply_at(t, server, 0.05), False, b"\r\n" + server.name.encode() + b" login: ")
    t = _type_line(conn, server, t, rng, "admin")
    t = conn.send(conn.reply_at(t, server, 0.01), False, b"Password: ")
    secret = f"{rng.getrandbits(24):06x}"
    t = _type_line(conn, server, t, rng, secret, echo=False)
    t = conn.send(
        conn.reply_at(t, server, 0.3), False, b"\r\n\r\nBusyBox v1.31.1 built-in shell (ash)\r\n\r\n# "
    )
    for _ in range(rng.randrange(1, 6)):
        command, output = BUSYBOX_COMMANDS[rng.randrange(len(BUSYBOX_COMMANDS))]
        t += rng.uniform(1.0, 15.0)
        t = _type_line(conn, server, t, rng, command)
        body = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 ./-:\r\n") for _ in range(output))
        t = conn.send(conn.reply_at(t, server, rng.uniform(5e-3, 0.05)), False, body + b"\r\n# ")
    t = _type_line(conn, server, t, rng, "exit")
    return conn.close(conn.reply_at(t, server, 2e-3), from_client=False)


def administer(
    sim: Sim, admin: Host, ssh_targets: list[Host], telnet_targets: list[Host], start: float, end: float
) -> None:
    """The admin's day: SSH and telnet sessions and pings, minutes apart."""
    rng = sim.rng("admin", admin.name)
    t = start + rng.uniform(5, 60)
    pingable = ssh_targets + telnet_targets
    n = 0
    while t < end:
        # the day's plan has its own stream: what one session draws does not change the sessions after it
        n += 1
        act = sim.rng("admin", admin.name, n)
        roll = rng.random()
        if roll < 0.45 and ssh_targets:
            target = ssh_targets[rng.randrange(len(ssh_targets))]
            t = ssh_session(sim, admin, target, sim.arp(t, admin, target), act)
        elif roll < 0.65 and telnet_targets:
            target = telnet_targets[rng.randrange(len(telnet_targets))]
            t = telnet_session(sim, admin, target, sim.arp(t, admin, target), act)
        elif rng.random() < 0.5 and pingable:
            target = pingable[rng.randrange(len(pingable))]
            t = ping(sim, admin, target, sim.arp(t, admin, target), rng.choice((3, 4, 5)), act)
        else:  # an outside host, through the router
            name = rng.choice(("dns.google", "one.one.one.one", "www.bro.org"))
            t_dns, addresses = sim.resolve(t, admin, name)
            t = ping(sim, admin, sim.net.by_ip(addresses[0]), t_dns + 1e-3, rng.choice((4, 5)), act)
        t += rng.uniform(20, 240)


# -- monitoring -----------------------------------------------------------------------------------------------
def monitor(sim: Sim, nms: Host, targets: list[Host], start: float, end: float) -> None:
    """Every minute: one ping per host and a bare TCP connect to each of its services (no data)."""
    rng = sim.rng("monitor", nms.name)
    period = rng.choice((30.0, 60.0, 60.0, 120.0))
    t = start + rng.uniform(5, period)
    while t < end:
        at = t
        for host in targets:
            at = sim.arp(at + rng.uniform(0.01, 0.2), nms, host)
            ping(sim, nms, host, at, 1, rng)
            for port in sorted(host.tcp_open):
                conn = TcpConn(sim, nms, host, port, loss=0.002, rng=rng)
                done = conn.connect(at + rng.uniform(1e-3, 0.02))
                if rng.random() < 0.5:
                    conn.close(done + rng.uniform(1e-4, 1e-3), from_client=True)
                else:  # SO_LINGER 0: the checker resets the connection it no longer needs
                    conn.abort(done + rng.uniform(1e-4, 1e-3), from_client=True)
        t += period * (1 + rng.uniform(-0.01, 0.01))
