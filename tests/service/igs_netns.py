"""A veth pair for live-capture tests: one end in a network namespace the test creates (where tcpreplay
sends), the other in the root namespace (where the sensor captures). Root only.

    igsn<pid><tag>n (namespace)  [igsn<pid><tag>t] <-- veth --> [igsn<pid><tag>c]  root namespace, no address

The capture end has no address, IPv6 off and no forwarding, so replayed frames (addressed to other MACs)
are seen by the capture and by nothing else. Deleting the namespace deletes the pair.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, live capture, nftables)"
    for tool in ("ip", "nft", "tcpreplay"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout)


@dataclass
class Veth:
    netns: str
    sender: str
    """The end inside ``netns`` (tcpreplay writes here)."""
    capture: str
    """The end in the root namespace (the sensor reads here)."""

    def replay(self, pcap: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """tcpreplay ``pcap`` out of the namespace end (``args``: --pps=N, --topspeed, --loop=N ...)."""
        return sh("ip", "netns", "exec", self.netns, "tcpreplay", "-q", f"--intf1={self.sender}", *args, pcap,
                  timeout=timeout)  # fmt: skip

    def replay_async(self, pcap: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "tcpreplay", "-q", f"--intf1={self.sender}", *args, pcap],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def delete(self) -> None:
        sh("ip", "link", "del", self.capture, check=False)
        sh("ip", "netns", "del", self.netns, check=False)


def create(tag: str = "") -> Veth:
    base = f"igsn{os.getpid()}{tag}"[:12]
    veth = Veth(netns=f"{base}n", sender=f"{base}t", capture=f"{base}c")
    try:
        sh("ip", "netns", "add", veth.netns)
        sh(
            "ip",
            "link",
            "add",
            veth.capture,
            "type",
            "veth",
            "peer",
            "name",
            veth.sender,
            "netns",
            veth.netns,
        )
        for key in (
            f"net.ipv6.conf.{veth.capture}.disable_ipv6=1",
            f"net.ipv4.conf.{veth.capture}.forwarding=0",
        ):
            sh("sysctl", "-q", "-w", key, check=False)
        sh("ip", "link", "set", veth.capture, "up")
        sh("ip", "netns", "exec", veth.netns, "ip", "link", "set", veth.sender, "up")
        sh("ip", "netns", "exec", veth.netns, "ip", "link", "set", "lo", "up")
    except BaseException:
        veth.delete()
        raise
    return veth
