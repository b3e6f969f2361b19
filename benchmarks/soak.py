"""Soak test of the sensor: steady replay, kill -9 and restart, and a flood of distinct flows.

    sudo PYTHONPATH=src .venv/bin/python benchmarks/soak.py --duration 1800      # the full run (30 min steady)
    sudo PYTHONPATH=src .venv/bin/python benchmarks/soak.py --duration 120       # a short one while developing

Needs root (a network namespace, a veth pair, tcpreplay, nftables inside the namespace). Everything it creates
is named ``igsn<pid>...`` and removed at the end; traffic goes only onto the veth pair it creates.

1. **steady**: a lab capture (``iotguard lab generate``, scenario ``--scenario``) is replayed in a loop with
   tcpreplay at ``--pps`` packets/s out of a namespace onto a veth pair; ``iotguard run --interface`` captures
   the other end. Measured: crash or not, resident memory every 10 s (growth after the warm-up, the first 20%
   of the run), kernel and queue drops, every attack episode of every loop alerted (an alert involving the
   episode's attacker and victim within its time window), and the alerts in SQLite equal to the EVE log.
   First the same detector reads the capture file once (``offline``): the episodes it alerts there are the
   ones the live sensor must alert in every loop; the others are outside what the model knows.
2. **kill -9**: a sensor with a blocking policy (nftables inside the namespace, not dry run) replays the
   capture; once blocks exist it is killed with SIGKILL, then restarted on the same state: every alert in the
   EVE log must be in SQLite, and every block still in force must be back in nftables with its remaining TTL.
3. **flood**: a capture of ``--flood-flows`` SYNs from distinct random sources is run through the sensor as
   fast as it goes with a flow table bound of ``--max-flows``; the flow table must stay within the bound and
   the API (``/api/stats``, ``/api/alerts``) must answer within 200 ms while it runs (p50/p99/max per path).
   First the same requests go to an idle sensor for ``--idle-seconds`` (the control: what the machine
   itself adds). ``--flood-seconds`` stops a flood that detection cannot get through in time.

Results go to ``--out`` (JSON) and are printed; docs/benchmarks.md quotes them with the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
API_LIMIT_MS = 200.0
# The inventory raises a MAC rebinding the first time it sees it; the next loops replay the same rebinding,
# which is no longer news, so these episodes are expected in the first loop only.
ONCE_PER_RUN = {"arp-spoofing"}


# -- plumbing -------------------------------------------------------------------------------------------------
def sh(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Veth:
    """Namespace ``igsn<pid>n`` holding the sender end; the capture end stays in the root namespace."""

    def __init__(self) -> None:
        base = f"igsn{os.getpid()}"[:11]
        self.netns, self.sender, self.capture = f"{base}n", f"{base}t", f"{base}c"
        sh("ip", "netns", "add", self.netns)
        # no IPv6 in the namespace: the sender's own router solicitations and MLD reports are not the capture
        for scope in ("all", "default"):
            sh(
                "ip",
                "netns",
                "exec",
                self.netns,
                "sysctl",
                "-q",
                "-w",
                f"net.ipv6.conf.{scope}.disable_ipv6=1",
                check=False,
            )
        sh(
            "ip",
            "link",
            "add",
            self.capture,
            "type",
            "veth",
            "peer",
            "name",
            self.sender,
            "netns",
            self.netns,
        )
        for key in (
            f"net.ipv6.conf.{self.capture}.disable_ipv6=1",
            f"net.ipv4.conf.{self.capture}.forwarding=0",
        ):
            sh("sysctl", "-q", "-w", key, check=False)
        sh("ip", "link", "set", self.capture, "up")
        sh("ip", "netns", "exec", self.netns, "ip", "link", "set", self.sender, "up")
        sh("ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up")

    def replay(self, pcap: Path, *, pps: int, loop: int) -> subprocess.Popen[str]:
        """``iotguard lab replay`` (tcpreplay) run inside the namespace."""
        cmd = ["ip", "netns", "exec", self.netns, PY, "-m", "iotguard", "lab", "replay", str(pcap),
               "--interface", self.sender, "--speed", str(pps), "--loop", str(loop)]  # fmt: skip
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env())

    def delete(self) -> None:
        sh("ip", "link", "del", self.capture, check=False)
        sh("ip", "netns", "del", self.netns, check=False)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(REPO / "src")}


def rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sensor:
    def __init__(self, workdir: Path, name: str, extra: dict, args: list[str]) -> None:
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cfg = {
            "service": {"state_dir": str(self.dir / "state"), "checkpoint_interval": 5.0},
            "api": {"port": self.port},
            "logging": {"level": "WARNING", "file": str(self.dir / "sensor.log")},
        }
        for section, values in extra.items():
            cfg.setdefault(section, {}).update(values)
        self.config = self.dir / "iotguard.yaml"
        self.config.write_text(json.dumps(cfg))  # JSON is YAML
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.token: str | None = None
        self._client: httpx.Client | None = None

    def start(self) -> None:
        cmd = [PY, "-m", "iotguard", "run", "--config", str(self.config), *self.args]
        with open(self.dir / "stderr.txt", "a") as errfile:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errfile, env=env(), text=True)
        deadline = time.monotonic() + 600  # the first start may build the default detector
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"sensor exited with {self.proc.returncode}: {(self.dir / 'stderr.txt').read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.url}api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("the sensor's API did not come up")
        self.token = (self.dir / "state" / "api-token").read_text().strip()
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def get(self, path: str, timeout: float = 5.0) -> tuple[float, dict]:
        # One client, kept: a new httpx client per request costs ~100 ms of TLS setup on this side alone.
        if self._client is None:
            self._client = httpx.Client(headers={"Authorization": f"Bearer {self.token}"})
        t0 = time.perf_counter()
        r = self._client.get(self.url + path, timeout=timeout)
        ms = 1000 * (time.perf_counter() - t0)
        r.raise_for_status()
        return ms, r.json()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def eve_lines(self) -> list[str]:
        path = self.dir / "state" / "eve.json"
        if not path.exists():
            return []
        text = path.read_text()
        lines = text.split("\n")
        return [line for line in lines[:-1] if line]  # a last line without newline was never completed

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.dir / 'state' / 'iotguard.db'}?mode=ro", uri=True)


# -- inputs ---------------------------------------------------------------------------------------------------
def lab_capture(workdir: Path, scenario: str, seed: int) -> tuple[Path, list]:
    from iotguard.core.episodes import read_episodes
    from iotguard.lab import generate

    run = generate(scenario, None, None, seed, workdir / "lab", flows=False)
    return run.capture, read_episodes(run.episodes_path)


def episode_offsets(capture: Path, episodes: list) -> tuple[int, list[tuple[object, int, int]]]:
    """Packets in the capture, and for each episode the index of its first and last packet (so its place in
    a replay at a fixed packet rate is known)."""
    from iotguard.capture import read_capture

    ts = np.concatenate([b.ts_us for b in read_capture(capture)]) / 1e6
    out = []
    for e in episodes:
        lo = int(np.searchsorted(ts, e.start, side="left"))
        hi = int(np.searchsorted(ts, e.end, side="right")) - 1
        out.append((e, lo, max(lo, hi)))
    return len(ts), out


def write_flood(path: Path, n: int, seed: int = 0) -> None:
    """``n`` TCP SYNs to 192.168.7.10:80 from distinct random sources in 10.0.0.0/8, 1 µs apart (pcap)."""
    rng = np.random.default_rng(seed)
    pairs = np.unique(rng.integers(0, 2**40, size=int(n * 1.05), dtype=np.uint64))[:n]
    rng.shuffle(pairs)
    src = (np.uint64(10 << 24) | (pairs >> np.uint64(16)) & np.uint64(0xFFFFFF)).astype(np.uint32)
    sport = (np.uint64(1024) + (pairs & np.uint64(0xFFFF)) % np.uint64(64000)).astype(np.uint16)
    frame = np.zeros((n, 54), dtype=np.uint8)
    frame[:, 0:6] = [0x02, 0, 0, 0, 0, 0x10]
    frame[:, 6:12] = [0x02, 0x66, 0, 0, 0, 0x66]
    frame[:, 12:14] = [0x08, 0x00]
    ip = frame[:, 14:34]
    ip[:, 0], ip[:, 3], ip[:, 8], ip[:, 9] = 0x45, 40, 64, 6
    ip[:, 12:16] = src.byteswap().view(np.uint8).reshape(n, 4)
    ip[:, 16:20] = [192, 168, 7, 10]
    words = ip.reshape(n, 10, 2).astype(np.uint32)
    total = (words[:, :, 0] << 8 | words[:, :, 1]).sum(axis=1)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    csum = (~total & 0xFFFF).astype(np.uint16)
    ip[:, 10], ip[:, 11] = csum >> 8, csum & 0xFF
    tcp = frame[:, 34:54]
    tcp[:, 0:2] = sport.byteswap().view(np.uint8).reshape(n, 2)
    tcp[:, 2:4] = [0, 80]
    tcp[:, 4:8] = rng.integers(0, 256, size=(n, 4), dtype=np.uint8)
    tcp[:, 12], tcp[:, 13], tcp[:, 14], tcp[:, 15] = 0x50, 0x02, 0xFA, 0xF0  # checksum left 0: not verified
    t0 = 1_700_000_000 * 10**6
    ts = t0 + np.arange(n, dtype=np.int64)
    rec = np.zeros((n, 16), dtype=np.uint8)
    rec[:, 0:4] = (ts // 10**6).astype("<u4").view(np.uint8).reshape(n, 4)
    rec[:, 4:8] = (ts % 10**6).astype("<u4").view(np.uint8).reshape(n, 4)
    rec[:, 8:12] = np.full(n, 54, "<u4").view(np.uint8).reshape(n, 4)
    rec[:, 12:16] = rec[:, 8:12]
    with open(path, "wb") as fh:
        fh.write(np.array([0xA1B2C3D4, 0x00040002, 0, 0, 65535, 1], dtype="<u4").tobytes()[:24])
        fh.write(np.concatenate([rec, frame], axis=1).tobytes())


# -- phases ---------------------------------------------------------------------------------------------------
def offline(workdir: Path, capture: Path, episodes: list) -> tuple[set[int], dict]:
    """The same detector over the capture file once, as fast as it goes: which episodes it alerts at all.
    An episode it never alerts is outside what the model knows (docs/benchmarks.md, detection), not something
    the live sensor lost; the steady phase reports its misses both ways."""
    sensor = Sensor(workdir, "offline", {}, ["--pcap", str(capture), "--speed", "max"])
    sensor.start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        _, stats = sensor.get("api/stats")
        if stats.get("health", {}).get("source_finished"):
            break
        time.sleep(1)
    sensor.stop()
    with sensor.db() as db:
        rows = sorted((r[0], r[1], r[2]) for r in db.execute("SELECT timestamp, src_ip, dest_ip FROM alerts"))
    ts = np.array([r[0] for r in rows], dtype=np.float64)
    src, dst = _as_ints([r[1] for r in rows]), _as_ints([r[2] for r in rows])
    hit: set[int] = set()
    for j, e in enumerate(episodes):
        a, b = np.searchsorted(ts, [e.start - 1.0, e.end + 1.0])
        if _involves(src[a:b], dst[a:b], e).any():
            hit.add(j)
    never = Counter(e.label for j, e in enumerate(episodes) if j not in hit)
    return hit, {
        "alerts": len(rows),
        "episodes_alerted": len(hit),
        "episodes": len(episodes),
        "not_alerted_by_label": dict(never),
    }


def steady(
    workdir: Path, veth: Veth, capture: Path, episodes: list, args: argparse.Namespace, known: set[int]
) -> dict:
    n_packets, offsets = episode_offsets(capture, episodes)
    loop_s = n_packets / args.pps
    loops = max(1, int(np.ceil(args.duration / loop_s)))
    sensor = Sensor(workdir, "steady", {}, ["--interface", veth.capture])
    sensor.start()
    assert sensor.proc is not None
    pid = sensor.proc.pid
    samples: list[tuple[float, int]] = []
    replay = veth.replay(capture, pps=args.pps, loop=loops)
    # The loops are timed from the first packet the sensor counts, not from launching the replay: starting
    # Python and tcpreplay takes seconds on a loaded machine, which shifted every expected episode window.
    started = time.time()
    while replay.poll() is None and time.time() - started < 120:
        t = time.time()
        if sensor.get("api/stats")[1]["counters"].get("packets", 0) > 0:
            started = t
            break
        time.sleep(0.05)
    try:
        while replay.poll() is None and time.time() - started < args.duration + 60:
            samples.append((time.time() - started, rss_kib(pid)))
            if sensor.proc.poll() is not None:
                break
            time.sleep(10)
    finally:
        if replay.poll() is None:
            replay.terminate()
        replay_out = replay.communicate(timeout=30)[0]
    elapsed = time.time() - started
    crashed = sensor.proc.poll() is not None
    time.sleep(5)  # let the last early records and flow timeouts through
    _, stats = sensor.get("api/stats")
    code = sensor.stop()
    eve = sensor.eve_lines()
    with sensor.db() as db:
        stored = [r[0] for r in db.execute("SELECT eve FROM alerts ORDER BY id")]
        alerts = [(r[0], r[1], r[2]) for r in db.execute("SELECT timestamp, src_ip, dest_ip FROM alerts")]
    warm = [kib for t, kib in samples if t >= 0.2 * elapsed]
    base = warm[0] if warm else 0
    growth = (max(warm) - base) / base if base else None
    # every episode of every loop: an alert raised by its attacker inside its window. An alert's time is the
    # last packet of its flow record (early records included), so it falls inside the episode's packets.
    ts = np.array([a[0] for a in alerts], dtype=np.float64)
    order = np.argsort(ts, kind="stable")
    ts_sorted = ts[order]
    src = _as_ints([alerts[i][1] for i in order])
    dst = _as_ints([alerts[i][2] for i in order])
    missed: list[dict] = []
    hit_once: set[int] = set()
    checked = checked_known = 0
    for k in range(loops):
        loop_start = started + k * loop_s
        if loop_start + loop_s > started + elapsed:
            break
        slack = 1.0 + 0.001 * (loop_start - started)  # tcpreplay's pacing drifts a little over a long run
        for j, (e, lo, hi) in enumerate(offsets):
            if k > 0 and e.label in ONCE_PER_RUN:
                continue
            checked += 1
            checked_known += j in known
            t_lo, t_hi = loop_start + lo / args.pps - slack, loop_start + hi / args.pps + slack
            a, b = np.searchsorted(ts_sorted, [t_lo, t_hi])
            if _involves(src[a:b], dst[a:b], e).any():
                hit_once.add(j)
            else:
                missed.append({"loop": k, "episode": j, "label": e.label})
    never = [offsets[j][0] for j in range(len(offsets)) if j not in hit_once]
    return {
        "pps": args.pps,
        "seconds": round(elapsed, 1),
        "capture_packets": n_packets,
        "loops": loops,
        "crashed": crashed,
        "exit_code": code,
        "packets": stats["counters"].get("packets"),
        "flows": stats["counters"].get("flows_final"),
        "early_records": stats["counters"].get("flows_early"),
        "drops": stats["drops"],
        "rss_mib_after_warmup": round(base / 1024, 1),
        "rss_mib_max_after_warmup": round(max(warm) / 1024, 1) if warm else None,
        "rss_growth_after_warmup": round(growth, 4) if growth is not None else None,
        "rss_series_mib": [(round(t), round(k / 1024, 1)) for t, k in samples],
        "alerts": len(stored),
        "episodes": len(offsets),
        "episode_loops_checked": checked,
        "episode_loops_missed": len(missed),
        "missed_by_label": dict(Counter(m["label"] for m in missed)),
        # the episodes the same detector alerts when it reads the capture file (the offline reference)
        "episodes_alerted_offline": len(known),
        "episode_loops_checked_offline_alerted": checked_known,
        "episode_loops_missed_offline_alerted": sum(1 for m in missed if m["episode"] in known),
        "missed_offline_alerted_by_label": dict(Counter(m["label"] for m in missed if m["episode"] in known)),
        "episodes_never_alerted": [f"{e.label} {e.attacker}->{e.victim}" for e in never],
        "sqlite_equals_eve": stored == eve,
        "replay": replay_out.strip().splitlines()[-3:],
    }


def _as_ints(addresses: list[str | None]) -> np.ndarray:
    """IPv4 addresses as integers; anything else (IPv6, a MAC, a device name, none) as -1."""
    import ipaddress

    out = np.full(len(addresses), -1, dtype=np.int64)
    cache: dict[str | None, int] = {}
    for i, text in enumerate(addresses):
        value = cache.get(text)
        if value is None:
            try:
                ip = ipaddress.ip_address(text or "")
                value = int(ip) if ip.version == 4 else -1
            except ValueError:
                value = -1
            cache[text] = value
        out[i] = value
    return out


def _inside(values: np.ndarray, net: str) -> np.ndarray:
    import ipaddress

    if net == "*":
        return np.ones(len(values), dtype=bool)
    n = ipaddress.ip_network(net, strict=False)
    if n.version != 4:
        return np.zeros(len(values), dtype=bool)
    return (values >= int(n.network_address)) & (values <= int(n.broadcast_address))


def _involves(src: np.ndarray, dst: np.ndarray, episode) -> np.ndarray:
    """Alerts raised by the episode's attacker, or by its victim answering the attacker, or (ARP spoofing)
    naming the victim as impersonated by a MAC whose address is unknown (the alert's source is not an IP)."""
    return (
        _inside(src, episode.attacker)
        | (_inside(dst, episode.attacker) & _inside(src, episode.victim))
        | ((src < 0) & _inside(dst, episode.victim))
    )


def kill9(workdir: Path, veth: Veth, capture: Path, args: argparse.Namespace) -> dict:
    policy = workdir / "block-policy.yaml"
    policy.write_text(
        json.dumps(
            {
                "dry_run": False,
                "limits": {"max_blocks_per_minute": 1000, "default_ttl": 900},
                "nftables": {"table": f"igsn{os.getpid()}", "netns": veth.netns},
                "rules": [{"name": "block-attackers", "match": {"severity": 2}, "actions": ["block"]}],
            }
        )
    )
    sensor = Sensor(workdir, "kill9", {"respond": {"policy": str(policy)}}, ["--interface", veth.capture])
    sensor.start()
    replay = veth.replay(capture, pps=args.pps, loop=1)
    deadline = time.monotonic() + 600
    blocks = 0
    while time.monotonic() < deadline and replay.poll() is None:
        time.sleep(2)
        _, b = sensor.get("api/blocks")
        blocks = b["total"]
        if blocks >= 3:
            break
    assert sensor.proc is not None
    os.kill(sensor.proc.pid, signal.SIGKILL)
    sensor.proc.wait()
    killed_at = time.time()
    replay.terminate()
    replay.communicate(timeout=30)
    eve = sensor.eve_lines()
    with sensor.db() as db:
        stored = {
            json.loads(r[0])["iotguard"]["alert_id"]: r[0] for r in db.execute("SELECT eve FROM alerts")
        }
        active = [
            (r[0], r[1])
            for r in db.execute(
                "SELECT target, expires FROM actions WHERE action='block' AND result='ok' AND expires > ?",
                (killed_at,),
            )
        ]
    eve_ids = [json.loads(line)["iotguard"]["alert_id"] for line in eve]
    missing = [i for i in eve_ids if i not in stored]
    different = [i for i, line in zip(eve_ids, eve, strict=True) if i in stored and stored[i] != line]
    # the kernel keeps blocks by itself; flush the table to prove the restart puts them back
    table = f"igsn{os.getpid()}"
    sh("ip", "netns", "exec", veth.netns, "nft", "flush", "table", "inet", table, check=False)
    sensor.start()  # same state directory
    time.sleep(3)
    listing = sh(
        "ip", "netns", "exec", veth.netns, "nft", "-j", "list", "table", "inet", table, check=False
    ).stdout
    restored = [t for t, _ in active if t in listing]
    _, api_blocks = sensor.get("api/blocks")
    sensor.stop()
    sh("ip", "netns", "exec", veth.netns, "nft", "delete", "table", "inet", table, check=False)
    return {
        "blocks_before_kill": blocks,
        "eve_alerts_at_kill": len(eve_ids),
        "sqlite_alerts_at_kill": len(stored),
        "eve_alerts_missing_from_sqlite": len(missing),
        "eve_lines_differing_from_sqlite": len(different),
        "blocks_in_force_at_kill": len(active),
        "blocks_back_in_nftables_after_restart": len(restored),
        "blocks_listed_by_api_after_restart": api_blocks["total"],
        "remaining_ttl_s_after_restart": sorted(round(b["remaining_s"]) for b in api_blocks["items"])[:5],
    }


def api_idle(workdir: Path, seconds: float) -> dict:
    """The control: the same requests to a sensor with nothing left to do (a 2,000-packet capture it has
    finished), on the same machine just before the flood. What this shows is the machine's share, not the
    sensor's (on a shared machine other work stalls the process now and then)."""
    pcap = workdir / "idle.pcap"
    write_flood(pcap, 2000, seed=1)
    sensor = Sensor(workdir, "idle", {}, ["--pcap", str(pcap), "--speed", "max"])
    sensor.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not sensor.get("api/stats")[1].get("health", {}).get(
        "source_finished"
    ):
        time.sleep(0.5)
    by_path: dict[str, list[float]] = {}
    started, i = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        path = "api/stats" if i % 2 == 0 else "api/alerts?limit=50"
        by_path.setdefault(path, []).append(sensor.get(path, timeout=10)[0])
        i += 1
        time.sleep(0.1)
    sensor.stop()
    return {p: _percentiles(v) for p, v in by_path.items()}


def flood(workdir: Path, args: argparse.Namespace) -> dict:
    control = api_idle(workdir, args.idle_seconds) if args.idle_seconds > 0 else None
    pcap = workdir / "flood.pcap"
    write_flood(pcap, args.flood_flows)
    sensor = Sensor(
        workdir,
        "flood",
        {"flows": {"max_flows": args.max_flows}, "capture": {"batch_packets": 4096}},
        ["--pcap", str(pcap), "--speed", "max"],
    )
    sensor.start()
    latencies: list[float] = []
    by_path: dict[str, list[float]] = {}
    table: list[float] = []
    capacity: list[float] = []
    errors = 0
    started = time.monotonic()
    i = 0
    finished = False
    while time.monotonic() - started < args.flood_seconds:
        try:
            path = "api/stats" if i % 2 == 0 else "api/alerts?limit=50"
            ms, body = sensor.get(path, timeout=10)
            latencies.append(ms)
            by_path.setdefault(path, []).append(ms)
            if i % 2 == 0:
                g = body["gauges"]
                table.append(g.get("flow_table", 0))
                capacity.append(g.get("flow_table_capacity", 0))
                health = body.get("health", {})
                if health.get("source_finished"):
                    finished = True
                    break
        except (httpx.HTTPError, KeyError):
            errors += 1
        i += 1
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    _, stats = sensor.get("api/stats")
    sensor.stop(timeout=120 if finished else 20)  # an unfinished flood is not flushed through detection
    lat = sorted(latencies)
    return {
        "flows": args.flood_flows,
        "max_flows": args.max_flows,
        "seconds": round(elapsed, 1),
        "finished": finished,
        "packets": stats["counters"].get("packets"),
        "flows_scored": stats["counters"].get("flows_scored"),
        "flow_records": stats["counters"].get("flows_final", 0) + stats["counters"].get("flows_early", 0),
        "evicted": stats["drops"].get("flow_table", 0),
        "flow_table_max": max(table) if table else None,
        "flow_table_capacity_max": max(capacity) if capacity else None,
        "within_bound": bool(table) and max(table) <= args.max_flows and max(capacity) <= args.max_flows,
        "api_requests": len(lat),
        "api_errors": errors,
        "api_ms_p50": round(statistics.median(lat), 1) if lat else None,
        "api_ms_p99": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1) if lat else None,
        "api_ms_max": round(lat[-1], 1) if lat else None,
        "api_within_200ms": bool(lat) and lat[-1] <= API_LIMIT_MS,
        "api_ms_by_path": {p: _percentiles(v) for p, v in by_path.items()},
        "api_ms_by_path_idle_control": control,
        "alerts": stats["alerts"]["total"],
        "rss_mib": round(stats["rss_bytes"] / 2**20, 1),
    }


def _percentiles(values: list[float]) -> dict[str, float | int]:
    v = sorted(values)
    return {
        "n": len(v),
        "p50": round(statistics.median(v), 1),
        "p99": round(v[min(len(v) - 1, int(0.99 * len(v)))], 1),
        "max": round(v[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=1800, help="seconds of steady replay (default 1800)"
    )
    parser.add_argument("--pps", type=int, default=20_000, help="replay rate, packets/s (default 20000)")
    parser.add_argument("--scenario", default="showcase", help="lab scenario replayed (default showcase)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--flood-flows", type=int, default=1_000_000)
    parser.add_argument("--max-flows", type=int, default=65_536, help="flow table bound in the flood phase")
    parser.add_argument(
        "--idle-seconds", type=float, default=60, help="API latency control on an idle sensor first (0: none)"
    )
    parser.add_argument(
        "--flood-seconds",
        type=float,
        default=3600,
        help="stop the flood phase after this long (default 3600)",
    )
    parser.add_argument("--phases", default="steady,kill9,flood")
    parser.add_argument("--out", type=Path, default=None, help="write the results here (JSON)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("soak.py needs root (network namespace, veth, tcpreplay, nftables)")
    phases = args.phases.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="iotguard-soak-"))
    results: dict = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    veth = Veth()
    try:
        capture, episodes = lab_capture(workdir, args.scenario, args.seed)
        results["capture"] = {"scenario": args.scenario, "episodes": len(episodes), "path": str(capture)}
        if "steady" in phases:
            known, results["offline"] = offline(workdir, capture, episodes)
            print(json.dumps({"offline": results["offline"]}, indent=1))
            results["steady"] = steady(workdir, veth, capture, episodes, args, known)
            print(
                json.dumps(
                    {"steady": {k: v for k, v in results["steady"].items() if k != "rss_series_mib"}},
                    indent=1,
                )
            )
        if "kill9" in phases:
            results["kill9"] = kill9(workdir, veth, capture, args)
            print(json.dumps({"kill9": results["kill9"]}, indent=1))
        if "flood" in phases:
            results["flood"] = flood(workdir, args)
            print(json.dumps({"flood": results["flood"]}, indent=1))
    finally:
        veth.delete()
        if not args.keep:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
