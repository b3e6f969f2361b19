"""Per-capture detection results of the default detector: does every attack episode raise an incident, and do
benign-only captures raise none at the default threshold?

    IOTGUARD_DATA_DIR=/work/shared/data PYTHONPATH=src python benchmarks/response_captures.py [--out FILE.json]
        [--detector DIR] [--lab-duration S] [--no-lab] [--flows-only]

Captures: the lab's ``test`` scenario (episodes from the lab's ground truth; its attack families partly unseen
in training) and its ``benign`` scenario with another seed, and every capture in ``$IOTGUARD_DATA_DIR/pcaps``
and the two IoT-23 pcaps (real IoT traffic, summed apart: the targets name ``pcaps/``), each labelled attack
or benign from its SOURCE.md. Prints a Markdown table; nothing is tuned here (the detector is the cached
default one, built from lab scenarios with other seeds, docs/detection.md).
Each capture goes through ``iotguard detect``'s path: the flow detector, the MQTT telemetry read off the wire and
the device inventory (``--flows-only``: the flow detector alone).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# capture (relative to the data dir) -> (kind, what it holds); from pcaps/SOURCE.md and iot23/SOURCE.md
CAPTURES: dict[str, tuple[str, str]] = {
    "pcaps/chrissanders_packets/activeosfingerprinting.pcapng": ("attack", "nmap OS fingerprinting"),
    "pcaps/chrissanders_packets/arppoison.pcapng": ("attack", "ARP poisoning (MITM)"),
    "pcaps/chrissanders_packets/dns_query_response.pcapng": ("benign", "DNS query"),
    "pcaps/chrissanders_packets/http_dvwa_clearlogin.pcapng": ("benign", "HTTP login"),
    "pcaps/chrissanders_packets/http_dvwa_directorytraversal.pcapng": ("attack", "directory traversal"),
    "pcaps/chrissanders_packets/http_dvwa_sqlinjection.pcapng": ("attack", "SQL injection"),
    "pcaps/chrissanders_packets/http_google.pcapng": ("benign", "HTTP request"),
    "pcaps/chrissanders_packets/synscan.pcapng": ("attack", "SYN port scan"),
    "pcaps/chrissanders_packets/tcp_handshake.pcapng": ("benign", "TCP handshake"),
    "pcaps/chrissanders_packets/tcp_ports.pcapng": ("benign", "HTTP sessions"),
    "pcaps/markofu_pcaps/dosattack.pcap": ("attack", "spoofed SYN flood"),
    "pcaps/markofu_pcaps/evilfingers_nmap/ACK_SCAN.pcap": ("attack", "nmap ACK scan"),
    "pcaps/markofu_pcaps/evilfingers_nmap/FIN_SCAN.pcap": ("attack", "nmap FIN scan"),
    "pcaps/markofu_pcaps/evilfingers_nmap/FTP_BOUNCE_SCAN.pcap": ("attack", "nmap FTP bounce scan"),
    "pcaps/markofu_pcaps/evilfingers_nmap/IP_PROTOCOL_SCAN.pcap": ("attack", "nmap IP protocol scan"),
    "pcaps/markofu_pcaps/evilfingers_nmap/NULL_SCAN.pcap": ("attack", "nmap NULL scan"),
    "pcaps/markofu_pcaps/evilfingers_nmap/RPC_SCAN.pcap": ("attack", "nmap RPC scan"),
    "pcaps/markofu_pcaps/evilfingers_nmap/TCP_CONNECT_SCAN.pcap": ("attack", "nmap connect scan"),
    "pcaps/markofu_pcaps/evilfingers_nmap/TCP_SYN_SCAN.pcap": ("attack", "nmap SYN scan"),
    "pcaps/markofu_pcaps/evilfingers_nmap/UDP_SCAN.pcap": ("attack", "nmap UDP scan"),
    "pcaps/markofu_pcaps/evilfingers_nmap/WINDOW_SCAN.pcap": ("attack", "nmap window scan"),
    "pcaps/markofu_pcaps/evilfingers_nmap/XMAS_TREE_SCAN.pcap": ("attack", "nmap XMAS scan"),
    "pcaps/markofu_pcaps/evilfingers_nmap/version_scan.pcap": ("attack", "nmap version scan"),
    "pcaps/markofu_pcaps/ftp-crack.pcap": ("attack", "FTP brute force"),
    "pcaps/markofu_pcaps/http.cap": ("benign", "HTTP download"),
    "pcaps/markofu_pcaps/osfingerprinting.pcap": ("attack", "ICMP OS fingerprinting"),
    "pcaps/markofu_pcaps/portscan.pcap": ("attack", "SYN port scan (29 ports)"),
    "pcaps/markofu_pcaps/telnet.pcap": ("benign", "telnet session"),
    "pcaps/mqttset_reduced/benign.pcap": ("benign", "MQTTset benign"),
    "pcaps/mqttset_reduced/bruteforce.pcapng": ("attack", "MQTT brute force"),
    "pcaps/mqttset_reduced/flood.pcap": ("attack", "MQTT publish flood"),
    "pcaps/mqttset_reduced/malariados.pcap": ("attack", "MQTT MalariaDoS"),
    "pcaps/mqttset_reduced/malformed.pcap": ("attack", "malformed MQTT"),
    "pcaps/mqttset_reduced/slowite.pcap": ("attack", "MQTT SlowITe"),
    "pcaps/tcpdump/coap.pcap": ("benign", "CoAP"),
    "pcaps/zeek/dhcp_dhcp_flood.pcap": ("attack", "DHCP flood"),
    "pcaps/zeek/ftp_bruteforce.pcap": ("attack", "FTP password guessing"),
    "pcaps/zeek/http_bro.org.pcap": ("benign", "web browsing"),
    "pcaps/zeek/icmp_5-pings.pcap": ("benign", "ICMP echo"),
    "pcaps/zeek/modbus_modbusSmall.pcap": ("benign", "Modbus/TCP"),
    "pcaps/zeek/mqtt.pcap": ("benign", "MQTT session"),
    "pcaps/zeek/nmap-vsn.pcap": ("attack", "nmap ARP sweep + version scan"),
    "pcaps/zeek/rfb_vnc-scanner.pcap": ("attack", "VNC scanner"),
    "pcaps/zeek/ssh_sshguess.pcap": ("attack", "SSH password guessing"),
    "iot23/CTU-IoT-Malware-Capture-34-1/2018-12-21-15-50-14-192.168.1.195.irc.pcap": (
        "attack",
        "IoT-23 34-1: a real bot's IRC C&C, 24 h",
    ),
    "iot23/CTU-Honeypot-Capture-4-1/2018-09-14-13-40-25-Philips-Hue-Bridge.pcap": (
        "benign",
        "IoT-23: a real Philips Hue bridge, 39 min",
    ),
}


def run_capture(detector, capture: Path, store_dir: Path, flows_only: bool = False):
    """Detect in one capture as ``iotguard detect`` does (a fresh engine and store, the log-only policy);
    returns (stats, incidents)."""
    from iotguard.respond.policy import default_policy
    from iotguard.service.offline import detect_source

    db = store_dir / f"{capture.stem}-{time.monotonic_ns()}.db"
    run = detect_source(capture, detector, policy=default_policy(), db=db, early=10, flows_only=flows_only)
    return run.stats, run.incidents


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", type=Path, help="detector directory (default: the built-in one)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--lab-duration", type=float, default=None, help="lab scenario duration (s)")
    parser.add_argument("--no-lab", action="store_true", help="only the captures from the data directory")
    parser.add_argument(
        "--flows-only", action="store_true", help="the flow detector alone (no MQTT telemetry, no inventory)"
    )
    args = parser.parse_args()

    from iotguard.core.paths import data_dir
    from iotguard.detect.detector import Detector

    if args.detector:
        detector = Detector.load(args.detector)
    else:
        from iotguard.detect.default import default_detector

        detector = default_detector()
    root = data_dir()
    results = []
    with tempfile.TemporaryDirectory(prefix="igr-bench-") as tmp:
        work = Path(tmp)
        if not args.no_lab:
            from iotguard.core.episodes import read_episodes
            from iotguard.evaluate.episodes import match_episodes
            from iotguard.lab import generate

            for name, seed in (("test", None), ("benign", 11)):
                run = generate(name, duration=args.lab_duration, seed=seed, out_dir=work / name, flows=False)
                episodes = read_episodes(run.episodes_path)
                t0 = time.perf_counter()
                stats, incidents = run_capture(detector, run.capture, work, args.flows_only)
                macs = {h["mac"]: h["ip"] for h in run.hosts if h.get("mac")}  # ARP spoofers named by MAC
                hits = [r.detected for r in match_episodes(episodes, incidents, macs=macs)]
                kind = "attack" if episodes else "benign"
                results.append(
                    {
                        "capture": f"lab:{name}" + (f" (seed {seed})" if seed is not None else ""),
                        "kind": kind,
                        "what": f"{len(episodes)} attack episodes" if episodes else "lab benign network",
                        "flows": stats.flows,
                        "alerts": stats.alerts,
                        "incidents": len(incidents),
                        "episodes": len(episodes),
                        "episodes_detected": int(sum(hits)),
                        "missed": sorted(
                            {
                                f"{e.label} ({e.category})"
                                for e, h in zip(episodes, hits, strict=True)
                                if not h
                            }
                        ),
                        "families": sorted({i.family for i in incidents}),
                        "seconds": round(time.perf_counter() - t0, 2),
                        "explain_seconds": stats.explain_seconds,
                    }
                )
        for rel, (kind, what) in CAPTURES.items():
            path = root / rel
            if not path.exists():
                results.append({"capture": rel, "kind": kind, "what": what, "error": "absent"})
                continue
            t0 = time.perf_counter()
            stats, incidents = run_capture(detector, path, work, args.flows_only)
            results.append(
                {
                    "capture": rel.removeprefix("pcaps/"),
                    "kind": kind,
                    "what": what,
                    "flows": stats.flows,
                    "alerts": stats.alerts,
                    "incidents": len(incidents),
                    "episodes": 1 if kind == "attack" else 0,
                    "episodes_detected": int(kind == "attack" and len(incidents) > 0),
                    "families": sorted({i.family for i in incidents}),
                    "seconds": round(time.perf_counter() - t0, 2),
                    "explain_seconds": stats.explain_seconds,
                }
            )

    def verdict(r: dict) -> str:
        if "error" in r:
            return r["error"]
        if r["kind"] == "benign":
            return "ok" if r["incidents"] == 0 else "FALSE POSITIVE"
        return "ok" if r["episodes_detected"] == r["episodes"] else "MISSED"

    print(f"detector: {detector.model_name} ({detector.name}); machine: {os.cpu_count()} CPUs")
    print("| capture | kind | content | flows | alerts | incidents | episodes detected | families | result |")
    print("|---|---|---|---:|---:|---:|---:|---|---|")
    for r in results:
        r["result"] = verdict(r)
        if "error" in r:
            print(f"| {r['capture']} | {r['kind']} | {r['what']} | | | | | | {r['error']} |")
            continue
        eps = f"{r['episodes_detected']}/{r['episodes']}" if r["kind"] == "attack" else "-"
        print(
            f"| {r['capture']} | {r['kind']} | {r['what']} | {r['flows']} | {r['alerts']} | {r['incidents']} |"
            f" {eps} | {', '.join(r['families'])} | {r['result']} |"
        )
    print()
    for title, rows in (
        ("lab and pcaps/", [r for r in results if not r["capture"].startswith("iot23/")]),
        ("IoT-23", [r for r in results if r["capture"].startswith("iot23/")]),
    ):
        attack = [r for r in rows if r["kind"] == "attack" and "error" not in r]
        benign = [r for r in rows if r["kind"] == "benign" and "error" not in r]
        print(
            f"{title}: attack captures fully detected: {sum(r['result'] == 'ok' for r in attack)}/{len(attack)};"
            f" benign captures without incidents: {sum(r['result'] == 'ok' for r in benign)}/{len(benign)}"
        )
    alerts = sum(r.get("alerts", 0) for r in results)
    explain = sum(r.get("explain_seconds", 0.0) for r in results)
    if alerts:
        print(
            f"explanations: {explain:.2f} s for {alerts} alerts ({explain / alerts * 1e3:.3f} ms per alert)"
        )
    for r in results:
        if r.get("missed"):
            print(f"{r['capture']}: missed episodes: {', '.join(r['missed'])}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
