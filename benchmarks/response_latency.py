"""Time from the packet that completes an attack flow's early record to the nftables rule being in place,
measured for real between two network namespaces (root).

    sudo IOTGUARD_DATA_DIR=/work/shared/data PYTHONPATH=src python benchmarks/response_latency.py
        [--trials 50] [--detector DIR] [--early 10] [--out FILE.json]

Set-up: namespaces ``igr<pid>a`` (attackers, one address per trial) and ``igr<pid>v`` (the victim, running the
sensor pipeline: live capture on its veth with iotguard.flows (early records after ``--early`` packets),
the DetectionEngine with the default detector, the ResponseEngine with a ``block`` policy applied with
nftables in the victim's namespace). Each trial sends a UDP flood (fixed 5-tuple, ~1,000 packets/s) from a
fresh attacker address. Latency = wall-clock time when ``nft`` returned (the rule is committed) minus the
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
sys.path.insert(0, str(HERE.parent / "tests" / "respond"))

VICTIM = "10.213.0.2"
PORT = 9999


def attacker_address(i: int) -> str:
    return f"10.213.{1 + i // 250}.{1 + i % 250}"


def sensor(args: argparse.Namespace) -> int:
    """Runs inside the victim namespace: capture -> flows -> detect -> respond; one JSON line per block."""
    from iotguard.detect.detector import Detector
    from iotguard.detect.engine import DetectionEngine
    from iotguard.flows import iter_flows
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

    engine = DetectionEngine(detector, sinks=[sink])
    print(json.dumps({"ready": True}), flush=True)
    stream = iter_flows(f"iface:{args.iface}", early=args.early, tick=0.05, duration=args.seconds)
    for frame in stream:
        if len(frame):
            engine.process(frame)
    print(json.dumps({"done": True, "stats": engine.stats.to_dict(), "kernel_drops": stream.source_stats.kernel_drops}),
          flush=True)  # fmt: skip
    responder.close()
    return 0


def flood(args: argparse.Namespace) -> int:
    """Runs inside the attacker namespace: one UDP flood per trial from a fresh address."""
    payload = os.urandom(64)
    for i in range(args.trials):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((attacker_address(i), 40000 + i))
            for _ in range(args.packets):
                s.sendto(payload, (VICTIM, PORT))
                time.sleep(0.001)
        time.sleep(args.gap)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--packets", type=int, default=40, help="packets per flood burst")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between trials")
    parser.add_argument("--early", type=int, default=10)
    parser.add_argument("--detector", type=Path)
    parser.add_argument("--out", type=Path)
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
    sensor_proc = None
    try:
        v_if = f"igr{os.getpid()}bv0"[-15:]
        a_if = f"igr{os.getpid()}ba0"[-15:]
        pair.run(pair.victim, "ip", "addr", "add", f"{VICTIM}/16", "dev", v_if)
        for i in range(args.trials):
            pair.run(pair.attacker, "ip", "addr", "add", f"{attacker_address(i)}/16", "dev", a_if)
        budget = args.trials * (args.gap + args.packets * 0.0012) + 15
        me = [sys.executable, str(Path(__file__).resolve())]
        common = ["--trials", str(args.trials), "--packets", str(args.packets), "--gap", str(args.gap)]
        sensor_cmd = ["ip", "netns", "exec", pair.victim, *me, "--sensor", "--iface", v_if, "--early",
                      str(args.early), "--seconds", str(budget)] + (["--detector", str(args.detector)] if args.detector else [])  # fmt: skip
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
        "latency_ms": {
            "p50": float(np.percentile(lat, 50) * 1e3) if len(lat) else None,
            "p99": float(np.percentile(lat, 99) * 1e3) if len(lat) else None,
            "max": float(lat.max() * 1e3) if len(lat) else None,
            "mean": float(lat.mean() * 1e3) if len(lat) else None,
        },
        "blocked_attacker_cut_off": blocked_ok,
        "sensor": done,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
