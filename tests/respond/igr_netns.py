"""Two network namespaces joined by a veth pair, for real nftables tests (root only).

    igr<pid><tag>a (attacker, 10.213.0.1/24)  <-- veth -->  igr<pid><tag>v (victim, 10.213.0.2/24)

Names carry the ``igr`` prefix and the pid; :meth:`Pair.delete` removes everything (namespaces take their
veth ends and nftables tables with them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

ATTACKER_IP = "10.213.0.1"
VICTIM_IP = "10.213.0.2"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    for tool in ("ip", "nft", "ping"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def sh(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout)


@dataclass
class Pair:
    attacker: str
    victim: str

    def run(
        self, ns: str, *args: str, check: bool = True, timeout: float = 20
    ) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)

    def reachable(self, src_ns: str | None = None, dst: str = VICTIM_IP, wait: float = 1.0) -> bool:
        """One ping from the attacker (default) to ``dst``; True if it was answered."""
        proc = self.run(
            src_ns or self.attacker, "ping", "-c", "1", "-W", str(wait), "-n", "-q", dst, check=False
        )
        return proc.returncode == 0

    def delete(self) -> None:
        for ns in (self.attacker, self.victim):
            sh("ip", "netns", "del", ns, check=False)


def create(tag: str = "") -> Pair:
    base = f"igr{os.getpid()}{tag}"
    pair = Pair(attacker=f"{base}a", victim=f"{base}v")
    try:
        sh("ip", "netns", "add", pair.attacker)
        sh("ip", "netns", "add", pair.victim)
        a_if, v_if = f"{base}a0"[-15:], f"{base}v0"[-15:]
        sh(
            "ip",
            "link",
            "add",
            a_if,
            "netns",
            pair.attacker,
            "type",
            "veth",
            "peer",
            "name",
            v_if,
            "netns",
            pair.victim,
        )
        pair.run(pair.attacker, "ip", "addr", "add", f"{ATTACKER_IP}/24", "dev", a_if)
        pair.run(pair.victim, "ip", "addr", "add", f"{VICTIM_IP}/24", "dev", v_if)
        for ns, ifname in ((pair.attacker, a_if), (pair.victim, v_if)):
            pair.run(ns, "ip", "link", "set", ifname, "up")
            pair.run(ns, "ip", "link", "set", "lo", "up")
    except BaseException:
        pair.delete()
        raise
    return pair
