"""Packet sources: capture files (pcap, pcapng, gzip) and live interfaces, as batches of packet arrays."""

from iotguard.capture.batch import PacketBatch
from iotguard.capture.files import CaptureFile, SourceStats, read_capture
from iotguard.capture.sources import LIVE_PREFIX, PacketSource, is_live, open_source

__all__ = [
    "LIVE_PREFIX",
    "CaptureFile",
    "PacketBatch",
    "PacketSource",
    "SourceStats",
    "is_live",
    "open_source",
    "read_capture",
]
