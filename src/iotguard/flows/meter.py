"""The streaming flow meter: packet batches in, flow-record DataFrames out.

>>> meter = FlowMeter(FlowConfig(early_packets=10))
>>> for batch in CaptureFile("trace.pcap"):
...     finished = meter.feed(batch)      # flows that ended (and early records) during this batch
>>> rest = meter.flush()                  # everything still in the table
>>> meter.stats.flows, meter.stats.skipped

A live sensor also calls ``meter.expire(time.time())`` now and then, so that flows end (and early records
by age appear) even while no packets arrive.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from iotguard.capture.batch import PacketBatch
from iotguard.core.errors import ConfigError
from iotguard.flows import table as t
from iotguard.flows.features import empty_records, records
from iotguard.flows.parse import Packets, parse, reason_counts

_OUT_ROWS = 16384
_MIN_SLOTS = 4096


class FlowConfig(BaseModel):
    """Flow meter settings. Times are in seconds; defaults are CICFlowMeter's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow_timeout: float = Field(
        120.0, gt=0, description="A flow ends when a packet arrives this long after its first packet."
    )
    activity_timeout: float = Field(
        5.0, gt=0, description="A gap longer than this ends an active period and starts an idle one."
    )
    close_grace: float | None = Field(
        5.0,
        ge=0,
        description=(
            "A TCP connection closed by FINs+ACK or a RST is emitted once idle this long; "
            "None keeps it until the flow timeout, exactly as CICFlowMeter does."
        ),
    )
    tcp_memory: float | None = Field(
        3600.0,
        ge=0,
        description=(
            "How long a TCP connection whose flow timed out is remembered, so that a later packet continues it "
            "(direction, tcp_flow_time) as CICFlowMeter does; None: until the table needs the slot."
        ),
    )
    early_packets: int | None = Field(
        None, ge=1, description="Emit a partial record once a flow has this many packets (None: off)."
    )
    early_seconds: float | None = Field(
        None, ge=0, description="Emit a partial record once a flow is this old (None: off)."
    )
    early_again: int | None = Field(
        None,
        ge=1,
        description="Emit a second partial record once a flow that already had one reaches this many packets "
        "(None: off): a flood whose first record came too early to show its rate shows it here.",
    )
    max_flows: int = Field(
        262_144, ge=16, description="Most flows held at once; when full the least recently seen are evicted."
    )
    scan_interval: float = Field(
        1.0, gt=0, description="How often (in packet time) the table is scanned for flows that are due."
    )

    @model_validator(mode="after")
    def _check(self) -> FlowConfig:
        if self.activity_timeout > self.flow_timeout:
            raise ValueError("activity_timeout must not exceed flow_timeout")
        if self.early_again is not None and self.early_again <= (self.early_packets or 0):
            raise ValueError("early_again must exceed early_packets")
        return self

    @classmethod
    def build(cls, config: FlowConfig | dict[str, Any] | None = None, **overrides: Any) -> FlowConfig:
        """Validate a config (object, dict or keyword overrides); a bad value raises ConfigError."""
        values: dict[str, Any] = {}
        if isinstance(config, FlowConfig):
            values = config.model_dump()
        elif isinstance(config, dict):
            values = dict(config)
        elif config is not None:
            raise ConfigError(f"flow config must be a FlowConfig or a dict, got {type(config).__name__}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or None
            raise ConfigError(
                first.get("msg", "invalid value"),
                where=f"flow config field {where!r}" if where else "flow config",
            ) from None

    def vector(self) -> np.ndarray:
        cfg = np.zeros(t.NC, np.float64)
        cfg[t.C_FLOW_TIMEOUT] = round(self.flow_timeout * 1e6)
        cfg[t.C_ACTIVITY] = round(self.activity_timeout * 1e6)
        cfg[t.C_CLOSE_GRACE] = -1.0 if self.close_grace is None else round(self.close_grace * 1e6)
        cfg[t.C_EARLY_PKTS] = 0 if self.early_packets is None else self.early_packets
        cfg[t.C_EARLY_US] = -1.0 if self.early_seconds is None else round(self.early_seconds * 1e6)
        cfg[t.C_SCAN_US] = round(self.scan_interval * 1e6)
        cfg[t.C_DORMANT_US] = -1.0 if self.tcp_memory is None else round(self.tcp_memory * 1e6)
        cfg[t.C_MAX_SLOTS] = self.max_flows
        cfg[t.C_EARLY_PKTS2] = 0 if self.early_again is None else self.early_again
        return cfg


@dataclass
class FlowStats:
    """Counters of a meter since it was made."""

    packets: int = 0
    """Packets fed (including skipped ones)."""
    bytes: int = 0
    """Their bytes on the wire."""
    flows: int = 0
    """Final flow records emitted."""
    early: int = 0
    """Partial (early) records emitted."""
    evicted: int = 0
    """Flows emitted early because the table was full."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Packets not turned into flows, by reason (see ``flows.parse.REASON_NAMES``)."""
    active_flows: int = 0
    """Flows in the table now."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "flows": self.flows,
            "early": self.early,
            "evicted": self.evicted,
            "skipped": dict(self.skipped),
            "active_flows": self.active_flows,
        }


class FlowMeter:
    """A bounded bidirectional flow table computing CICFlowMeter features (see docs/flows.md)."""

    def __init__(self, config: FlowConfig | dict[str, Any] | None = None, **overrides: Any) -> None:
        self.config = FlowConfig.build(config, **overrides)
        self._cfg = self.config.vector()
        self.stats = FlowStats()
        slots = min(_MIN_SLOTS, self.config.max_flows)
        self._alloc(slots)
        self._meta = np.zeros(t.NM, np.int64)
        self._meta[t.M_TOP] = slots
        self._meta[t.M_RNG] = 0x2545F4914F6CDD1D
        self._wheel = np.full(t.NB, -1, np.int64)
        self._out_f = np.zeros((_OUT_ROWS, t.NF), np.float64)
        self._out_k = np.zeros((_OUT_ROWS, 4), np.uint64)
        self._out_i = np.zeros((_OUT_ROWS, t.NO), np.int64)
        self._no_packets = parse(PacketBatch.from_packets([], []))

    # -- table storage ----------------------------------------------------------------------------------
    def _alloc(self, slots: int) -> None:
        self._S = np.zeros((slots, t.NF), np.float64)
        self._K = np.zeros((slots, 4), np.uint64)
        self._P = np.zeros((slots, 2), np.int32)
        self._used = np.zeros(slots, np.int8)
        self._hashes = np.zeros(slots, np.uint64)
        # The index is open addressing with a bit mask: its size must be a power of two (at least 2x the
        # slots), whatever max_flows is, or probing can miss free cells and never end.
        self._index = np.full(1 << (2 * slots - 1).bit_length(), -1, np.int32)
        self._free = np.arange(slots - 1, -1, -1, dtype=np.int32)
        self._occ = np.full((2, slots), -1, np.int32)
        self._W = np.full((t.NW, slots), -1, np.int64)
        self._W[t.W_IN] = 0

    _ROWS = ("_S", "_K", "_P", "_used", "_hashes")  # per-slot arrays indexed [slot, ...]
    _COLS = ("_occ", "_W")  # per-slot arrays indexed [..., slot]

    def _grow(self) -> None:
        old = self._S.shape[0]
        new = min(old * 2, self.config.max_flows)
        saved = {name: getattr(self, name) for name in (*self._ROWS, *self._COLS)}
        self._alloc(new)
        for name in self._ROWS:
            getattr(self, name)[:old] = saved[name]
        for name in self._COLS:
            getattr(self, name)[:, :old] = saved[name]
        t.rebuild_index(self._index, self._hashes, self._used)
        # The table was full when it grew, so the free slots are exactly the new ones.
        self._free[: new - old] = np.arange(new - 1, old - 1, -1, dtype=np.int32)
        self._meta[t.M_TOP] = new - old

    @property
    def capacity(self) -> int:
        """Flow slots allocated now (grows on demand up to ``max_flows``)."""
        return int(self._S.shape[0])

    @property
    def now(self) -> float | None:
        """The meter's clock: the latest packet (or ``expire``) time in epoch seconds, None before any."""
        return self._meta[t.M_NOW] / 1e6 if self._meta[t.M_STARTED] else None

    # -- the API ----------------------------------------------------------------------------------------
    def feed(self, batch: PacketBatch, packets: Packets | None = None) -> pd.DataFrame:
        """Add a batch of packets; returns the records emitted meanwhile (maybe none). ``packets``: the batch
        already parsed (:func:`iotguard.flows.parse.parse`), for a caller that reads its headers too."""
        if not isinstance(batch, PacketBatch):
            raise TypeError(f"feed() takes a PacketBatch, not {type(batch).__name__}")
        self.stats.bytes += batch.wire_bytes
        if packets is None:
            packets = parse(batch)
        self.stats.packets += len(packets)
        self.stats.skipped.update(reason_counts(packets.reason))
        return self._run(packets)

    def expire(self, now: float | None = None) -> pd.DataFrame:
        """Emit what is due at ``now`` (epoch seconds; default: the wall clock), without new packets."""
        now_us = int(round((time.time() if now is None else float(now)) * 1e6))
        if not self._meta[t.M_STARTED]:
            self._meta[t.M_STARTED] = 1
            self._meta[t.M_WHEEL_T] = now_us // int(self._cfg[t.C_SCAN_US])
        if now_us > self._meta[t.M_NOW]:
            self._meta[t.M_NOW] = now_us
        self._meta[t.M_WHEEL_RUN] = 1
        return self._run(self._no_packets)

    def flush(self) -> pd.DataFrame:
        """Emit every flow still in the table (end of capture) and empty the table."""
        self._meta[t.M_FLUSH] = 1
        return self._run(self._no_packets)

    # -- internals --------------------------------------------------------------------------------------
    def _run(self, p: Packets) -> pd.DataFrame:
        frames = []
        i = 0
        while True:
            i, status = t.process(
                i,
                p.ts_us,
                p.src_hi,
                p.src_lo,
                p.dst_hi,
                p.dst_lo,
                p.sport,
                p.dport,
                p.proto,
                p.payload,
                p.hdr,
                p.flags,
                p.window,
                p.icmp_type,
                p.icmp_code,
                p.reason,
                p.http if p.http is not None else np.zeros(len(p), np.int32),
                p.http_head if p.http_head is not None else np.zeros(len(p), np.int8),
                p.exe if p.exe is not None else np.zeros(len(p), np.int8),
                p.rfb if p.rfb is not None else np.zeros(len(p), np.int8),
                self._S,
                self._K,
                self._P,
                self._used,
                self._index,
                self._hashes,
                self._free,
                self._occ,
                self._wheel,
                self._W,
                self._meta,
                self._cfg,
                self._out_f,
                self._out_k,
                self._out_i,
            )
            if status == t.NEED_GROW:
                self._grow()
                continue
            if self._meta[t.M_NOUT]:
                frames.append(self._drain())
            if status == t.DONE:
                break
        self.stats.evicted = int(self._meta[t.M_EVICTED])
        self.stats.active_flows = int(self._meta[t.M_ACTIVE])
        if not frames:
            return empty_records()
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _drain(self) -> pd.DataFrame:
        n = int(self._meta[t.M_NOUT])
        self._meta[t.M_NOUT] = 0
        # Records that came out together are given oldest flow first (stable: an early record stays before the
        # final record of its flow), so the order does not depend on where flows sat in the table.
        order = np.argsort(self._out_f[:n, t.TS_FIRST], kind="stable")
        frame = records(self._out_f[order], self._out_k[order], self._out_i[order])
        partial = int(np.count_nonzero(self._out_i[:n, t.O_KIND] == t.KIND_PARTIAL))
        self.stats.early += partial
        self.stats.flows += n - partial
        return frame
