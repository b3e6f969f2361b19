"""Build a scenario's network, run its devices and attacks, and write the capture with its ground truth.

Order matters and is fixed: the network and its hosts, then every benign device, then (knowing which hosts
talk to which) the attacks, then the time-ordered capture. Everything random descends from the seed and
everything timed from the scenario's start time, so one seed always gives the same bytes.
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from iotguard import __version__
from iotguard.core.episodes import Episode, write_episodes
from iotguard.core.errors import ConfigError
from iotguard.core.progress import NO_PROGRESS, Progress
from iotguard.lab.devices import (
    camera,
    coap_device,
    dashboard,
    gateway,
    mqtt_client,
    mqtt_node,
    mqtt_sensor,
    office,
    phone,
    plc,
    smart_plug,
    vnc,
)
from iotguard.lab.devices.common import NTP_NAME, cloud_heartbeats
from iotguard.lab.network import EMBEDDED_LINUX, LINUX, LWIP, WINDOWS, Host, Network
from iotguard.lab.pcap import Capture, Packets, write_pcap
from iotguard.lab.scenarios import ATTACKS, DEVICE_KINDS, Scenario, get_scenario
from iotguard.lab.sim import Sim, World

log = logging.getLogger(__name__)

MIN_DURATION = 30.0
MAX_DURATION = 86_400.0
MAX_DEVICES = 200
NTP_SERVERS = ("162.159.200.1", "185.125.190.57", "194.58.204.20", "213.239.234.28")
CLOUDS = {camera.CLOUD: "47.91.88.17", smart_plug.CLOUD: "52.28.113.9"}
CLOUD_INTERVALS = {  # device kind -> (cloud name, shortest and longest check-in interval in seconds)
    "plug": ("shelly-13-eu.shelly.cloud", 45.0, 120.0),
    "camera": ("litedev.hik-connect.com", 30.0, 90.0),
}
ELEMENTS = {
    "mqtt-sensor": ("espressif", LWIP, {}, {}),
    "plug": ("tplink", LWIP, {80: "http"}, {}),
    "camera": ("hikvision", EMBEDDED_LINUX, {80: "http", 554: "rtsp", 8000: "hik-sdk"}, {}),
    "coap": ("ti", LWIP, {}, {5683: "coap"}),
    "mqtt-node": ("espressif", LWIP, {}, {}),  # vendor and stack: those of its client library
}


@dataclass(frozen=True)
class LabRun:
    """What :func:`generate` wrote."""

    scenario: str
    seed: int
    duration: float
    devices: int
    out_dir: Path
    capture: Path
    episodes_path: Path
    scenario_path: Path
    flows_path: Path | None
    episodes: list[Episode]
    packets: int
    bytes: int
    hosts: list[dict] = field(default_factory=list)
    flows: int | None = None  # rows in flows.parquet (None when it was not written)


@dataclass
class Built:
    """A generated capture in memory, with per-packet ground truth (``packets.tags``)."""

    scenario: Scenario
    seed: int
    duration: float
    devices: int
    packets: Packets
    episodes: list[Episode]
    tags: list[int]  # episode i was tagged tags[i] on its packets
    world: World
    hosts: list[Host]


def _check(
    scenario: Scenario, duration: float | None, devices: int | None, seed: int | None
) -> tuple[float, int, int]:
    duration = float(scenario.duration if duration is None else duration)
    devices = int(scenario.devices if devices is None else devices)
    seed = int(scenario.seed if seed is None else seed)
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise ConfigError(
            f"duration {duration:g} s is out of range",
            where="--duration",
            expected=f"{MIN_DURATION:g} to {MAX_DURATION:g} seconds",
        )
    if not 4 <= devices <= MAX_DEVICES:
        raise ConfigError(
            f"{devices} devices is out of range", where="--devices", expected=f"4 to {MAX_DEVICES}"
        )
    if seed < 0:
        raise ConfigError(f"seed {seed} is negative", where="--seed", expected="an integer >= 0")
    return duration, devices, seed


def _device_kinds(scenario: Scenario, devices: int, rng: random.Random) -> list[str]:
    """One of each kind the mix has first (attacks need cameras and plugs), the rest drawn from the mix."""
    kinds = list(DEVICE_KINDS)
    weights = [scenario.mix.get(k, 0.0) for k in kinds]
    present = [k for k, w in zip(kinds, weights, strict=True) if w > 0]
    chosen = present[:devices] + rng.choices(kinds, weights=weights, k=max(0, devices - len(present)))
    rng.shuffle(chosen)
    return chosen


def build(
    scenario: Scenario | str,
    duration: float | None = None,
    devices: int | None = None,
    seed: int | None = None,
    progress: Progress = NO_PROGRESS,
) -> Built:
    """Simulate a scenario in memory (no files): the time-ordered packets, their tags, and the episodes."""
    scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
    duration, devices, seed = _check(scenario, duration, devices, seed)
    base = datetime.fromisoformat(scenario.start_time)
    base_unix = base.timestamp()
    base_us = round(base_unix * 1e6)
    root = random.Random(f"{seed}/{scenario.name}/network")
    net = Network(scenario.subnet, root)
    hub = net.add_local("hub", "hub", "raspberrypi", LINUX, address=str(net.subnet.network_address + 2))
    hub.tcp_open.update({22: "ssh", 1883: "mqtt", 8123: "http"})
    hub.udp_open.update({5353: "mdns"})
    nvr = net.add_local(
        "nvr", "nvr", "hikvision", EMBEDDED_LINUX, address=str(net.subnet.network_address + 3)
    )
    nvr.tcp_open.update({80: "http", 554: "rtsp", 8000: "hik-sdk"})
    net.gateway.tcp_open.update({53: "dns", 80: "http"})
    net.gateway.udp_open.update({53: "dns", 67: "dhcp"})
    tablet = net.add_local("tablet", "tablet", "intel", WINDOWS)
    phones = [net.add_local(f"phone-{i + 1}", "phone", "intel", LINUX) for i in range(max(1, devices // 3))]
    sim = Sim(seed=seed, duration=duration, base_unix=base_unix, net=net, cap=Capture(base_us, duration))
    sim.names[NTP_NAME] = list(NTP_SERVERS)
    for i, address in enumerate(NTP_SERVERS):
        net.add_external(f"ntp-{i}", "ntp", address, LINUX, delay=root.uniform(0.008, 0.03))
    for name, address in CLOUDS.items():
        net.add_external(name, "cloud", address, LINUX, delay=root.uniform(0.015, 0.05))
        sim.names[name] = [address]
    kinds = _device_kinds(scenario, devices, root)
    hosts: list[Host] = []
    counts: dict[str, int] = {}
    for kind in kinds:
        vendor, stack, tcp_open, udp_open = ELEMENTS[kind]
        counts[kind] = counts.get(kind, 0) + 1
        name = f"{kind}-{counts[kind]}"
        if kind == "mqtt-node":
            lib = mqtt_node.library(sim, name)
            vendor, stack = lib.vendor, lib.stack
        host = net.add_local(name, kind, vendor, stack)
        host.tcp_open.update(tcp_open)
        host.udp_open.update(udp_open)
        if (kind == "camera" and root.random() < 0.7) or (kind == "plug" and root.random() < 0.3):
            host.tcp_open[23] = "telnet"  # the weakness Mirai looks for
        hosts.append(host)
    if any(a.kind == "mirai" for a in scenario.attacks):  # the infected device and at least one it can infect
        for host in [h for h in hosts if h.kind in ("camera", "plug")][:2]:
            host.tcp_open[23] = "telnet"
    world = World(hub=hub, nvr=nvr, tablet=tablet, devices=hosts)
    extra = _extra_hosts(scenario, net, seed, devices, nvr)

    with progress.task(f"{scenario.name}: simulating devices", total=len(hosts) + 2) as task:
        for i, host in enumerate(hosts):
            boot_at = root.uniform(0.0, min(8.0, duration / 10))
            if host.kind == "mqtt-sensor":
                mqtt_sensor.simulate(sim, host, hub, i, boot_at, duration)
            elif host.kind == "mqtt-node":
                mqtt_node.simulate(sim, host, hub, i, boot_at, duration)
            elif host.kind == "plug":
                smart_plug.simulate(sim, host, hub, boot_at, duration)
            elif host.kind == "camera":
                camera.simulate(sim, host, nvr, boot_at, duration, [tablet])
            else:
                coap_device.simulate(sim, host, hub, boot_at, duration)
            task.advance()
        for host in hosts:
            if host.kind in CLOUD_INTERVALS:
                name, low, high = CLOUD_INTERVALS[host.kind]
                cloud_heartbeats(sim, host, 0.0, duration, name, root.uniform(low, high))
        cloud_heartbeats(sim, hub, 0.0, duration, "version.home-assistant.io", root.uniform(200, 400))
        if extra:
            _simulate_extras(sim, extra, world, duration)
        dashboard.simulate(sim, tablet, hub, root.uniform(1.0, 5.0), duration)
        for person in [tablet, *phones]:
            phone.simulate(sim, person, root.uniform(0.0, 10.0), duration)
        clients = hosts + phones + [tablet, hub, nvr] + [h for group in extra.values() for h in group]
        gateway.simulate(sim, net.gateway, clients, 0.0, duration)
        task.advance(2)
    world.benign_pairs = sim.cap.ip_pairs()
    n_benign_episodes = len(sim.episodes)
    assert n_benign_episodes == 0, "benign devices must not register episodes"

    with progress.task(f"{scenario.name}: simulating attacks", total=len(scenario.attacks)) as task:
        for plan in scenario.attacks:
            ATTACKS[plan.kind].run(sim, world, plan.start * duration, plan.end * duration, dict(plan.params))
            task.advance()

    with progress.task(f"{scenario.name}: ordering {len(sim.cap):,} packets"):
        packets = sim.cap.build()
    episodes, tags = _episodes(sim, packets)
    return Built(scenario, seed, duration, devices, packets, episodes, tags, world, list(net.hosts.values()))


def _extra_hosts(
    scenario: Scenario, net: Network, seed: int, devices: int, nvr: Host
) -> dict[str, list[Host]]:
    """The hosts of a scenario's extra behaviours (``Scenario.extras``), by role."""
    rng = random.Random(f"{seed}/{scenario.name}/extras")
    out: dict[str, list[Host]] = {}
    if "office" in scenario.extras:
        out["pc"] = [
            net.add_local(f"pc-{i + 1}", "pc", "dell", WINDOWS if rng.random() < 0.6 else LINUX)
            for i in range(max(1, devices // 6))
        ]
        out["admin"] = [net.add_local("admin", "admin", "dell", LINUX)]
        out["monitor"] = [net.add_local("monitor", "monitor", "raspberrypi", LINUX)]
        net.gateway.tcp_open[22] = "ssh"
        nvr.tcp_open[22] = "ssh"
    if "modbus" in scenario.extras:
        out["scada"] = [net.add_local("scada", "scada", "dell", WINDOWS)]
        out["plc"] = []
        for i in range(rng.randrange(2, 7)):
            vendor = "schneider" if rng.random() < 0.5 else "siemens"
            host = net.add_local(
                f"plc-{i + 1}", "plc", vendor, LWIP if rng.random() < 0.5 else EMBEDDED_LINUX
            )
            host.tcp_open.update({502: "modbus", 80: "http"})
            out["plc"].append(host)
    if "mqtt-clients" in scenario.extras:
        out["edge"] = [
            net.add_local(f"edge-{i + 1}", "edge", "raspberrypi", LINUX) for i in range(rng.randrange(1, 3))
        ]
        out["server"] = [net.add_local("automation", "server", "dell", LINUX)]
    if "vnc" in scenario.extras:  # last: the other extras' hosts keep their addresses and MACs
        out["operator"] = [net.add_local("operator", "workstation", "dell", WINDOWS)]
        nvr.tcp_open[vnc.PORT] = vnc.SERVICE
    return out


def _simulate_extras(sim: Sim, extra: dict[str, list[Host]], world: World, duration: float) -> None:
    rng = sim.rng("extras")
    hub, nvr, gateway = world.hub, world.nvr, sim.net.gateway
    for pc in extra.get("pc", []):
        office.browse(sim, pc, rng.uniform(0, 20), duration)
    for edge in extra.get("edge", []):
        mqtt_client.telemetry_gateway(sim, edge, hub, rng.uniform(0, 10), duration)
        mqtt_client.cloud_bridge(sim, edge, rng.uniform(0, 10), duration)
    for server in extra.get("server", []):
        mqtt_client.scripts(sim, server, hub, rng.uniform(0, 30), duration)
    for scada in extra.get("scada", []):
        for device in extra.get("plc", []):
            plc.simulate(sim, scada, device, rng.uniform(0, 10), duration)
    for server in extra.get("server", []):  # after every publisher: it is forwarded what they published
        mqtt_client.automation(sim, server, hub, rng.uniform(0, 5), duration)
    telnet_targets = [d for d in world.devices if 23 in d.tcp_open]
    for admin in extra.get("admin", []):
        office.administer(sim, admin, [hub, nvr, gateway], telnet_targets, rng.uniform(0, 60), duration)
    watched = [hub, nvr, gateway, *extra.get("plc", []), *world.devices]
    for nms in extra.get("monitor", []):
        office.monitor(sim, nms, watched, rng.uniform(0, 30), duration)
    for workstation in extra.get("operator", []):
        vnc.operator(sim, workstation, nvr, rng.uniform(0.02, 0.15) * duration, duration)


def _episodes(sim: Sim, packets: Packets) -> tuple[list[Episode], list[int]]:
    """Each registered episode with the time window its packets actually span (episodes left without any
    packet, e.g. cut off by a short duration, are dropped)."""
    tags = packets.tags
    order = np.argsort(tags, kind="stable")
    sorted_tags = tags[order]
    episodes, kept = [], []
    for k, spec in enumerate(sim.episodes, start=1):
        lo, hi = np.searchsorted(sorted_tags, [k, k + 1])
        if lo == hi:
            log.info(
                "episode %s %s -> %s has no packets in the capture; dropped",
                spec.label,
                spec.attacker,
                spec.victim,
            )
            continue
        ts = packets.ts_us[order[lo:hi]]
        episodes.append(
            Episode(
                int(ts.min()) / 1e6,
                int(ts.max()) / 1e6,
                spec.attacker,
                spec.victim,
                spec.label,
                spec.category,
            )
        )
        kept.append(k)
    return episodes, kept


def generate(
    scenario: Scenario | str,
    duration: float | None = None,
    devices: int | None = None,
    seed: int | None = None,
    out_dir: str | os.PathLike[str] = ".",
    progress: Progress = NO_PROGRESS,
    *,
    flows: bool = True,
) -> LabRun:
    """Generate a scenario into ``out_dir``: ``capture.pcap``, ``episodes.csv``, ``scenario.json`` and, when
    the flow extractor is installed and ``flows`` is true, ``flows.parquet`` with per-flow labels."""
    built = build(scenario, duration, devices, seed, progress)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory: {exc}", where=str(out)) from exc
    capture = out / "capture.pcap"
    with progress.task(f"{built.scenario.name}: writing {capture}"):
        size, digest = write_pcap(capture, built.packets)
    episodes_path = out / "episodes.csv"
    tmp = out / ".episodes.csv.tmp"
    try:
        write_episodes(tmp, built.episodes)
        os.replace(tmp, episodes_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write ground truth: {exc}", where=str(episodes_path)) from exc
    hosts = [
        {"name": h.name, "kind": h.kind, "ip": h.ip, "mac": h.mac_text if h.local else None, "local": h.local}
        for h in built.hosts
    ]
    meta = {
        "generator": f"iotguard {__version__}",
        "scenario": built.scenario.to_json(),
        "duration": built.duration,
        "devices": built.devices,
        "seed": built.seed,
        "packets": len(built.packets),
        "capture_bytes": size,
        "capture_sha256": digest,
        "families": sorted({e.category for e in built.episodes}),
        "hosts": hosts,
    }
    scenario_path = out / "scenario.json"
    tmp = out / ".scenario.json.tmp"
    try:
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, scenario_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write scenario parameters: {exc}", where=str(scenario_path)) from exc
    flows_path, n_flows = (
        _write_flows(capture, episodes_path, out / "flows.parquet", progress) if flows else (None, None)
    )
    return LabRun(
        scenario=built.scenario.name,
        seed=built.seed,
        duration=built.duration,
        devices=built.devices,
        out_dir=out,
        capture=capture,
        episodes_path=episodes_path,
        scenario_path=scenario_path,
        flows_path=flows_path,
        episodes=built.episodes,
        packets=len(built.packets),
        bytes=size,
        hosts=hosts,
        flows=n_flows,
    )


def _write_flows(
    capture: Path, episodes: Path, target: Path, progress: Progress
) -> tuple[Path | None, int | None]:
    """Per-flow labels through the flow extractor and its labeller (``iotguard.flows``), when installed."""
    try:
        from iotguard.flows import FlowStream, FlowWriter
    except ImportError:  # a build without the flow stage: the capture and its episodes are still complete
        log.info("iotguard.flows is not available: no flows.parquet written")
        return None, None
    stream = FlowStream(capture, labels=episodes, progress=progress)
    with FlowWriter(target) as writer:
        for frame in stream:
            if len(frame):
                writer.write(frame)
    return target, writer.rows
