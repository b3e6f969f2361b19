"""Replay a capture onto a network interface with tcpreplay, for testing live capture end to end.

Needs the ``tcpreplay`` binary (Debian/Ubuntu: ``apt-get install tcpreplay``) and the right to send raw frames
(root or CAP_NET_RAW). Send only onto interfaces you own, such as one end of a veth pair in a network
namespace: the frames carry the lab's addresses and attacks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from iotguard.core.errors import CaptureError, ConfigError, IotguardError


class ReplayError(IotguardError):
    """tcpreplay is missing or failed."""


@dataclass(frozen=True)
class ReplayResult:
    packets: int  # packets tcpreplay reports as sent successfully
    failed: int
    seconds: float
    command: list[str]


def speed_flags(speed: str) -> list[str]:
    """``realtime`` (the capture's own timing), ``max`` (as fast as possible), ``N`` packets per second, or
    ``Nx`` (N times the capture's timing)."""
    text = str(speed).strip().lower()
    if text in ("realtime", "real", "1x"):
        return []
    if text in ("max", "top", "topspeed"):
        return ["--topspeed"]
    try:
        if text.endswith("x"):
            factor = float(text[:-1])
            if factor > 0:
                return [f"--multiplier={factor:g}"]
        else:
            pps = float(text)
            if pps > 0:
                return [f"--pps={pps:g}"]
    except ValueError:
        pass
    raise ConfigError(
        f"bad speed {speed!r}",
        where="--speed",
        expected="realtime, max, a packet rate such as 5000, or a multiplier such as 10x",
    )


def replay(
    capture: str | PathLike[str],
    interface: str,
    speed: str = "realtime",
    *,
    loop: int = 1,
    timeout: float | None = None,
) -> ReplayResult:
    """Send every frame of ``capture`` out of ``interface``; returns what tcpreplay reports."""
    capture = Path(capture)
    if not capture.is_file():
        raise CaptureError("capture file not found", where=str(capture))
    if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", interface):
        raise ConfigError(
            f"bad interface name {interface!r}",
            where="--interface",
            expected="an interface name such as eth0",
        )
    if loop < 1:
        raise ConfigError(f"loop {loop} < 1", where="--loop", expected="a count >= 1")
    binary = shutil.which("tcpreplay")
    if binary is None:
        raise ReplayError(
            "tcpreplay is not installed", expected="the tcpreplay binary on PATH (apt-get install tcpreplay)"
        )
    command = [binary, f"--intf1={interface}", *speed_flags(speed), f"--loop={loop}", str(capture)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ReplayError(f"tcpreplay did not finish within {timeout:g} s", where=interface) from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        reason = next(
            (line for line in lines if "rror" in line),
            lines[-1] if lines else f"exit status {done.returncode}",
        )
        raise ReplayError(f"tcpreplay failed: {reason}", where=interface)
    sent = re.search(r"Successful packets:\s+(\d+)", output)
    failed = re.search(r"Failed packets:\s+(\d+)", output)
    seconds = re.search(r"Actual: \d+ packets \(\d+ bytes\) sent in ([\d.]+) seconds", output)
    return ReplayResult(
        packets=int(sent.group(1)) if sent else 0,
        failed=int(failed.group(1)) if failed else 0,
        seconds=float(seconds.group(1)) if seconds else 0.0,
        command=command,
    )
