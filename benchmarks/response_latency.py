"""Time from the packet that completes an attack flow's early record to the nftables rule being in place,
measured for real between two network namespaces (root).

    sudo IOTGUARD_DATA_DIR=/work/shared/data PYTHONPATH=src python benchmarks/response_latency.py
        [--trials 50] [--detector DIR] [--early 10] [--early-again 100] [--packets 30] [--slow-start N]
        [--out FILE.json]

Set-up: namespaces ``igr<pid>a`` (attackers, one address per trial) and ``igr<pid>v`` (the victim, running the
sensor pipeline: a raw AF_PACKET capture with kernel timestamps on its veth, iotguard's FlowMeter (early
records after ``--early`` packets and again after ``--early-again``, as the sensor's defaults),
the DetectionEngine with the default detector, the ResponseEngine with a ``block`` policy applied with
nftables in the victim's namespace). Each trial sends a Mirai-style UDP plain flood (one 5-tuple to a random
port, 512-byte random payloads, 200 packets/s) from a fresh attacker address. Latency = wall-clock time when ``nft`` returned (the rule is committed) minus the
capture timestamp of the packet that completed the early record (the alert's timestamp). A trial whose flood
is not flagged counts as a miss and is reported, not hidden. After the run, every attacker address must be
in the block set, and a blocked address must no longer reach the victim.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SLOW_INTERVAL = 0.05  # seconds between the first publishes of a slow-starting flood (--slow-start)
sys.path.insert(0, str(HERE.parent / "tests" / "respond"))

VICTIM = "10.213.0.2"


def attacker_address(i: int) -> str:
    return f"10.213.{1 + i // 250}.{1 + i % 250}"


def sensor(args: argparse.Namespace) -> int:
    """Runs inside the victim namespace: capture -> flows -> detect -> respond; one JSON line per block."""

    from iotguard.capture.batch import PacketBatch
    from iotguard.detect.detector import Detector
    from iotguard.detect.engine import DetectionConfig, DetectionEngine
    from iotguard.detect.incidents import FoldConfig
    from iotguard.flows import FlowMeter
    from iotguard.respond.engine import ResponseEngine
    from iotguard.respond.nft import Nftables
    from iotguard.respond.policy import ActionItem, BlockAction, Policy, Rule

    if args.detector:
        detector = Detector.load(args.detector)
    else:
        from iotguard.detect.default import default_detector

        detector = default_detector()
    policy = Policy(
        dry_run=False, rules=[Rule(name="block", actions=[ActionItem(block=BlockAction(ttl=300))])]
    )
    policy.limits.max_blocks_per_minute = 10_000
    responder = ResponseEngine(policy, firewall=Nftables(args.table))
    responder.firewall.ensure()  # the table exists before the first attack, as in a running sensor

    def sink(alert, incident) -> None:
        records = responder.handle(alert, incident)
        done = time.time()
        for rec in records:
            if rec.action == "block":
                print(json.dumps({"src": alert.src_ip, "packet_ts": alert.timestamp, "rule_ts": done,
                                  "result": rec.result, "partial": alert.partial, "family": alert.family,
                                  "confidence": alert.confidence}), flush=True)  # fmt: skip

    # every trial comes from a fresh address against one victim: without this, the folding would (rightly)
    # see a distributed attack after 10 attackers and contain none of them by source
    from iotguard.detect.evidence import EvidenceConfig

    config = DetectionConfig(
        fold=FoldConfig(fanin=1_000_000, scatter=1_000_000),
        evidence=EvidenceConfig(enabled=not args.no_evidence),
    )
    engine = DetectionEngine(detector, config=config, sinks=[sink])
    meter = FlowMeter(early_packets=args.early, early_again=args.early_again or None)
    _warm_up(meter, detector)
    sock = _packet_socket(args.iface)
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + args.seconds
    packets = 0
    while time.monotonic() < deadline:
        frames, stamps = _receive(sock, max_wait=0.02)
        if not frames:
            continue
        packets += len(frames)
        out = meter.feed(PacketBatch.from_packets(frames, stamps))
        if len(out):
            engine.process(out)
            if args.verbose:
                v = detector.score(out)
                for i in range(len(out)):
                    print(f"{out['src_ip'].iloc[i]} partial={bool(out['partial'].iloc[i])} family={v.family[i]}"
                          f" classifier={v.classifier_score[i]:.2f} anomaly={v.anomaly_score[i]:.3f}", file=sys.stderr)  # fmt: skip
    print(json.dumps({"done": True, "packets": packets, "stats": engine.stats.to_dict()}), flush=True)
    responder.close()
    return 0


def _warm_up(meter, detector) -> None:
    """Compile the flow meter's jitted code and load the models before the first attack (a running sensor is
    warm): a UDP flow of 12 packets through a throw-away meter, then the detector on its records."""
    import struct

    from iotguard.capture.batch import PacketBatch
    from iotguard.flows import FlowMeter

    def frame(i: int) -> bytes:
        payload = bytes(64)
        udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0, bytes([192, 0, 2, 1]),
                         bytes([192, 0, 2, 2]))  # fmt: skip
        return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp

    scratch = FlowMeter(early_packets=meter.config.early_packets, early_again=meter.config.early_again)
    now = int(time.time() * 1e6)
    out = scratch.feed(
        PacketBatch.from_packets([frame(i) for i in range(12)], [now + i * 1000 for i in range(12)])
    )
    flushed = scratch.flush()
    for records in (out, flushed):
        if len(records):
            detector.score(records)


SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
ETH_P_ALL = 0x0003


def _packet_socket(iface: str) -> socket.socket:
    """A raw AF_PACKET socket on ``iface`` with kernel receive timestamps: the capture the sensor's live source
    does, kept here so the measurement covers capture -> flow meter -> detection -> nftables and nothing else."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setblocking(False)
    return sock


def _receive(sock: socket.socket, max_wait: float) -> tuple[list[bytes], list[int]]:
    """Every packet waiting (up to 4096), after waiting at most ``max_wait`` for the first."""
    import select
    import struct

    frames: list[bytes] = []
    stamps: list[int] = []
    if not select.select([sock], [], [], max_wait)[0]:
        return frames, stamps
    while len(frames) < 4096:
        try:
            data, anc, _flags, _addr = sock.recvmsg(65535, 64)
        except BlockingIOError:
            break
        ts = time.time_ns() // 1000
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", value[:16])
                ts = sec * 1_000_000 + nsec // 1000
        frames.append(data)
        stamps.append(ts)
    return frames, stamps


def flood(args: argparse.Namespace) -> int:
    """Runs inside the attacker namespace: one UDP flood per trial from a fresh address."""
    import random

    rng = random.Random(args.trials)
    if args.attack == "mqtt":
        import paho.mqtt.client as mqtt

        for i in range(args.trials):
            c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"flood{i}")
            c.connect(VICTIM, 1883, keepalive=60, bind_address=attacker_address(i))
            c.loop_start()
            for k in range(args.packets):
                c.publish("sensors/temperature", os.urandom(256), qos=0)
                time.sleep(SLOW_INTERVAL if k < args.slow_start else args.interval)
            c.disconnect()
            c.loop_stop()
            time.sleep(args.gap)
        return 0
    for i in range(args.trials):
        port = rng.randrange(1024, 65536)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((attacker_address(i), rng.randrange(32768, 61000)))
            for _ in range(args.packets):
                s.sendto(os.urandom(512), (VICTIM, port))
                time.sleep(args.interval)
        time.sleep(args.gap)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--packets", type=int, default=30, help="packets per flood burst")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between trials")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between flood packets")
    parser.add_argument("--slow-start", type=int, default=0,
                        help=f"mqtt: the first N publishes {SLOW_INTERVAL * 1e3:.0f} ms apart (a flood that starts slowly)")  # fmt: skip
    parser.add_argument("--early", type=int, default=10)
    parser.add_argument("--early-again", type=int, default=100, help="second early record (0: none)")
    parser.add_argument("--detector", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--attack", choices=("udp", "mqtt"), default="mqtt",
                        help="mqtt: publish flood against a mosquitto broker in the victim namespace;"
                        " udp: Mirai-style UDP plain flood")  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="print each flow's verdict (sensor side)")
    parser.add_argument(
        "--no-evidence", action="store_true", help="turn the evidence gate off (detect.evidence)"
    )
    parser.add_argument("--sensor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flood", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--iface", help=argparse.SUPPRESS)
    parser.add_argument("--table", default="igrbench", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sensor:
        return sensor(args)
    if args.flood:
        return flood(args)

    import igr_netns

    reason = igr_netns.skip_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 2
    if not args.detector:  # build the default detector outside the namespaces (may take a while)
        from iotguard.detect.default import default_detector

        default_detector()
    pair = igr_netns.create("b")
    sensor_proc = broker = None
    try:
        v_if = f"igr{os.getpid()}bv0"[-15:]
        a_if = f"igr{os.getpid()}ba0"[-15:]
        pair.run(pair.victim, "ip", "addr", "add", f"{VICTIM}/16", "dev", v_if)
        for i in range(args.trials):
            pair.run(pair.attacker, "ip", "addr", "add", f"{attacker_address(i)}/16", "dev", a_if)
        budget = (
            args.trials
            * (args.gap + args.packets * (args.interval + 0.0005) + args.slow_start * SLOW_INTERVAL)
            + 15
        )
        me = [sys.executable, str(Path(__file__).resolve())]
        common = ["--trials", str(args.trials), "--packets", str(args.packets), "--gap", str(args.gap),
                  "--interval", str(args.interval), "--attack", args.attack, "--slow-start", str(args.slow_start)]  # fmt: skip
        broker = None
        if args.attack == "mqtt":
            conf = Path(f"/tmp/igr{os.getpid()}-mosquitto.conf")
            conf.write_text("listener 1883 0.0.0.0\nallow_anonymous true\npersistence false\n")
            broker = subprocess.Popen(["ip", "netns", "exec", pair.victim, "mosquitto", "-c", str(conf)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(0.5)
        sensor_cmd = ["ip", "netns", "exec", pair.victim, *me, "--sensor", "--iface", v_if, "--early",
                      str(args.early), "--early-again", str(args.early_again), "--seconds", str(budget)] + (["--verbose"] if args.verbose else []) + (["--no-evidence"] if args.no_evidence else []) + (["--detector", str(args.detector)] if args.detector else [])  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        sensor_proc = subprocess.Popen(sensor_cmd, stdout=subprocess.PIPE, text=True, env=env)
        assert json.loads(sensor_proc.stdout.readline()).get("ready")
        time.sleep(1.0)  # let the capture start
        subprocess.run(["ip", "netns", "exec", pair.attacker, *me, "--flood", *common], check=True, env=env)
        blocks, done = [], None
        for line in sensor_proc.stdout:
            msg = json.loads(line)
            if msg.get("done"):
                done = msg
                break
            blocks.append(msg)
        sensor_proc.wait(30)
        in_set = {e.address for e in __import__("iotguard.respond.nft", fromlist=["Nftables"]).Nftables(
            "igrbench", netns=pair.victim).elements()}  # fmt: skip
        probe = pair.run(
            pair.attacker, "ping", "-c", "1", "-W", "0.5", "-I", attacker_address(0), VICTIM, check=False
        )
        blocked_ok = probe.returncode != 0 if attacker_address(0) in in_set else None
    finally:
        if sensor_proc is not None and sensor_proc.poll() is None:
            sensor_proc.kill()
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        pair.delete()

    import numpy as np

    first = {}
    for b in blocks:
        if b["result"] == "ok" and b["src"] not in first:
            first[b["src"]] = b
    lat = np.array([b["rule_ts"] - b["packet_ts"] for b in first.values()])
    attackers = {attacker_address(i) for i in range(args.trials)}
    result = {
        "trials": args.trials,
        "detected": len(set(first) & attackers),
        "blocked_in_nftables": len(in_set & attackers),
        "false_blocks": sorted(set(first) - attackers),
        "early_record_alerts": sum(1 for b in first.values() if b["partial"]),
        "late_record_alert_ms": [
            round((b["rule_ts"] - b["packet_ts"]) * 1e3, 1) for b in first.values() if not b["partial"]
        ],
        "latency_ms": {
            "p50": float(np.percentile(lat, 50) * 1e3) if len(lat) else None,
            "p90": float(np.percentile(lat, 90) * 1e3) if len(lat) else None,
            "p95": float(np.percentile(lat, 95) * 1e3) if len(lat) else None,
            "over_1s": int((lat > 1.0).sum()),
            "p99": float(np.percentile(lat, 99) * 1e3) if len(lat) else None,
            "max": float(lat.max() * 1e3) if len(lat) else None,
            "mean": float(lat.mean() * 1e3) if len(lat) else None,
        },
        "per_trial_ms": [round(float(v) * 1e3, 1) for v in lat],
        "blocked_attacker_cut_off": blocked_ok,
        "sensor": done,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
