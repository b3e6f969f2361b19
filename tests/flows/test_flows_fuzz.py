"""Fuzzing the readers and the flow table with damaged real captures: never a crash or a hang.

Each case damages a small real capture (random byte flips, truncation, a bogus record length, an absurd
snap length, a gzip of the damage) and extracts flows from it. The only acceptable outcomes are records (with
every parsed packet in exactly one final record) or a CaptureError. The cases run in a subprocess with a
deadline, because a hang inside a compiled loop cannot be interrupted from Python.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")

FUZZ_SCRIPT = r"""
import gzip, json, random, struct, sys, tempfile, traceback
from pathlib import Path
from iotguard.capture import CaptureFile
from iotguard.core.errors import CaptureError
from iotguard.flows import FlowMeter

seed, cases_per_file, files = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
rng = random.Random(seed)
tmp = Path(tempfile.mkdtemp(prefix="igf-fuzz-"))
report = {"cases": 0, "capture_errors": 0, "damaged": 0, "failures": []}

def mutate(data: bytes) -> bytes:
    data = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:  # flip random bytes, biased to the first kilobyte (headers)
        for _ in range(rng.randint(1, 24)):
            pos = rng.randrange(min(len(data), 1024) if rng.random() < 0.5 else len(data))
            data[pos] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncate anywhere
        del data[rng.randrange(len(data)):]
    elif kind == 2:  # a bogus 32-bit length at a random 4-byte-aligned offset
        pos = rng.randrange(0, max(1, len(data) - 4)) & ~3
        data[pos:pos + 4] = struct.pack("<I", rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 65536 * 5, 13]))
    elif kind == 3:  # absurd snap length in a pcap global header / damage the pcapng section length
        data[16:20] = struct.pack("<I", rng.choice([0, 0xFFFFFFFF, 1]))
    elif kind == 4:  # random bytes spliced in
        pos = rng.randrange(len(data))
        data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:  # overwrite a run with zeros or 0xff
        pos = rng.randrange(len(data))
        data[pos:pos + rng.randint(1, 200)] = bytes([rng.choice([0, 255])]) * rng.randint(1, 200)
    return bytes(data)

for name in files:
    original = Path(name).read_bytes()
    for case in range(cases_per_file):
        data = mutate(original)
        if rng.random() < 0.15:
            data = gzip.compress(data)
            if rng.random() < 0.5:
                data = data[: rng.randrange(len(data))]
        path = tmp / f"case{case}.pcap"
        path.write_bytes(data)
        report["cases"] += 1
        try:
            meter = FlowMeter(early_packets=3, max_flows=16)
            with CaptureFile(path, batch_size=rng.choice([1, 7, 64, 65536])) as capture:
                frames = [meter.feed(b) for b in capture]
            frames.append(meter.flush())
            records = sum(int((f.fwd_packets + f.bwd_packets)[~f.partial].sum()) for f in frames)
            parsed = meter.stats.packets - sum(meter.stats.skipped.values())
            if records != parsed or meter.stats.packets != capture.stats.packets:
                report["failures"].append(f"{name} case {case}: {records} packets in records, {parsed} parsed")
            if capture.stats.damaged:
                report["damaged"] += 1
        except CaptureError:
            report["capture_errors"] += 1
        except Exception:
            report["failures"].append(f"{name} case {case}: " + traceback.format_exc(limit=3))
import shutil
shutil.rmtree(tmp, ignore_errors=True)
print(json.dumps(report))
"""

FILES = [
    "pcaps/zeek/mqtt.pcap",
    "pcaps/tcpdump/coap.pcap",
    "pcaps/chrissanders_packets/http_google.pcapng",
    "pcaps/chrissanders_packets/activeosfingerprinting.pcapng",
    "pcaps/markofu_pcaps/portscan.pcap",
]


def test_damaged_captures_never_crash_or_hang(data_file):
    paths = [str(data_file(f)) for f in FILES]
    proc = subprocess.run(
        [sys.executable, "-c", FUZZ_SCRIPT, "20240611", "120", *paths],
        capture_output=True,
        text=True,
        timeout=240,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], "\n".join(report["failures"][:5])
    assert report["cases"] == 120 * len(FILES)
    # the damage was real: some files were rejected, many had damage counted
    assert report["capture_errors"] > 0 and report["damaged"] > 50


@pytest.mark.parametrize(
    "content", [b"", b"\x00", b"GIF89a" + b"\x00" * 100, b"\xd4\xc3\xb2\xa1" + b"\xff" * 12]
)
def test_tiny_and_foreign_files(tmp_path, content):
    from iotguard.capture import CaptureFile
    from iotguard.core.errors import CaptureError

    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError):
        list(CaptureFile(path))
