"""BPF filters on capture files: the jitted interpreter accepts exactly what tcpdump accepts."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from iotguard.capture import open_source
from iotguard.capture.bpf import compile_filter
from iotguard.core.errors import CaptureError

CASES = [
    ("pcaps/markofu_pcaps/ftp-crack.pcap", "tcp port 21 and tcp[tcpflags] & tcp-fin != 0"),
    ("pcaps/zeek/modbus_modbusSmall.pcap", "udp or (tcp and len > 80)"),
    ("pcaps/markofu_pcaps/evilfingers_nmap/IP_PROTOCOL_SCAN.pcap", "icmp or ip proto 47 or arp"),
    ("pcaps/mqttset_reduced/benign.pcap", "tcp dst port 1883 and ip[2:2] > 60"),  # Linux cooked capture
    ("pcaps/chrissanders_packets/arppoison.pcapng", "not udp and ether src host 00:21:70:c0:56:f0"),
    ("iot23/CTU-Honeypot-Capture-4-1/2018-09-14-13-40-25-Philips-Hue-Bridge.pcap", "udp port 5353 or icmp"),
]


@pytest.mark.parametrize(("relative", "expression"), CASES)
def test_filter_counts_equal_tcpdump(data_file, relative, expression):
    if not shutil.which("tcpdump"):
        pytest.skip("tcpdump is not installed")
    path = data_file(relative)
    expected = subprocess.run(
        ["tcpdump", "-nn", "-q", "-r", str(path), expression], capture_output=True, text=True, timeout=120
    ).stdout.count("\n")
    with open_source(path, bpf=expression, batch_size=997) as source:
        kept = sum(len(batch) for batch in source)
    assert kept == expected
    assert source.stats.filtered == source.stats.packets - kept


def test_bad_filter_is_reported_before_reading(data_file):
    with pytest.raises(CaptureError, match="bad capture filter"):
        open_source(data_file("pcaps/zeek/mqtt.pcap"), bpf="tcp port")


def test_compiled_program_is_classic_bpf():
    prog = compile_filter("tcp", 1)
    assert prog.shape[1] == 4 and prog[-1, 0] & 0x07 == 0x06  # ends with a RET
