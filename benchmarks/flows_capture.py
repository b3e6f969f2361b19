"""Build a large benchmark capture (pcap, Ethernet) from the shared real captures; nothing is committed.

The base is every packet of the 46 shared captures (``pcaps/`` and ``iot23/``: MQTT and MQTT attacks, CoAP,
Modbus, nmap scans, SYN/DHCP floods, FTP/SSH brute force, web attacks, HTTP browsing, a Mirai C&C channel,
a Philips Hue bridge); Linux-cooked frames get an Ethernet header. Each capture is aligned to a common start
and cut to its first 10 minutes (``--window``), which leaves 99,457 packets: a busy 10 minutes of a network
where all of this happens at once. That window is replayed K times back to back, each copy with its own
addresses (the second byte of every IPv4 address, the third byte of every IPv6 address, is shifted by the
copy number), so the traffic's intensity stays the same however long the capture grows; the result is cut at
N packets and written to a pcap file:

    IOTGUARD_DATA_DIR=../shared/data PYTHONPATH=src python benchmarks/flows_capture.py -n 1000000 -o /tmp/big.pcap
"""

from __future__ import annotations

import argparse
import os
import struct
from pathlib import Path

import numpy as np

from iotguard.capture import CaptureFile

WINDOW_S = 600


def _base(data_root: Path) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """(frames, timestamps aligned to 0, IP header offset or -1) for every shared packet; frames of link types
    other than Ethernet and Linux cooked are empty."""
    files = sorted(p for p in (data_root / "pcaps").rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
    files += sorted((data_root / "iot23").rglob("*.pcap"))
    frames: list[bytes] = []
    stamps: list[np.ndarray] = []
    l3: list[int] = []
    for path in files:
        start = None
        with CaptureFile(path) as capture:
            for batch in capture:
                if start is None and len(batch):
                    start = int(batch.ts_us[0])
                stamps.append(batch.ts_us - start)
                for i in range(len(batch)):
                    frame, lt = batch.packet(i), int(batch.linktype[i])
                    if lt == 113:  # Linux cooked -> Ethernet, keeping the protocol field
                        frame = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02" + frame[14:16] + frame[16:]
                    elif lt != 1:
                        frame = b""
                    frames.append(frame)
                    l3.append(_l3_offset(frame))
    return frames, np.concatenate(stamps), np.array(l3, dtype=np.int64)


def _l3_offset(frame: bytes) -> int:
    if len(frame) < 14:
        return -1
    etype, pos = struct.unpack(">H", frame[12:14])[0], 14
    while etype in (0x8100, 0x88A8) and len(frame) >= pos + 4:
        etype, pos = struct.unpack(">H", frame[pos + 2 : pos + 4])[0], pos + 4
    return pos if etype in (0x0800, 0x86DD) else -1


def _rewrite(frame: bytes, l3: int, copy: int) -> bytes:
    if l3 < 0 or copy == 0:
        return frame
    data = bytearray(frame)
    if data[l3] >> 4 == 4 and len(data) >= l3 + 20:
        for pos in (l3 + 13, l3 + 17):
            data[pos] = (data[pos] + copy) & 0xFF
    elif data[l3] >> 4 == 6 and len(data) >= l3 + 40:
        for pos in (l3 + 10, l3 + 26):
            data[pos] = (data[pos] + copy) & 0xFF
    return bytes(data)


def build(
    n_packets: int,
    output: Path,
    data_root: Path | None = None,
    window_s: int = WINDOW_S,
    t0_us: int = 1_600_000_000_000_000,
) -> dict:
    """Write the first ``n_packets`` (in time order) of the replayed mix to ``output``; returns a summary."""
    data_root = data_root or Path(os.environ.get("IOTGUARD_DATA_DIR", "../shared/data"))
    frames, stamps, l3 = _base(data_root)
    window_us = window_s * 1_000_000
    in_window = (stamps >= 0) & (stamps < window_us)
    keep = np.flatnonzero(np.fromiter((len(f) > 0 for f in frames), bool, len(frames)) & in_window)
    keep = keep[np.argsort(stamps[keep], kind="stable")]
    base_n = keep.shape[0]
    copies = n_packets // base_n + 1
    times = (stamps[keep][None, :] + window_us * np.arange(copies)[:, None]).ravel()
    order = np.arange(min(n_packets, times.shape[0]))
    copy_of, index_of = np.divmod(order, base_n)
    written = 0
    with open(output, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for chunk in range(0, order.shape[0], 100_000):
            parts = []
            for k, i, t in zip(
                copy_of[chunk : chunk + 100_000].tolist(),
                index_of[chunk : chunk + 100_000].tolist(),
                times[order[chunk : chunk + 100_000]].tolist(),
                strict=True,
            ):
                j = int(keep[i])
                frame = _rewrite(frames[j], int(l3[j]), k)
                sec, usec = divmod(t0_us + t, 1_000_000)
                parts.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
                written += 1
            fh.write(b"".join(parts))
    return {
        "packets": written,
        "base_packets": base_n,
        "copies": int(copy_of.max()) + 1,
        "bytes": output.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--packets", type=int, default=1_000_000)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--window", type=int, default=WINDOW_S, help="seconds of each capture to keep")
    args = parser.parse_args()
    print(build(args.packets, args.output, window_s=args.window))


if __name__ == "__main__":
    main()
