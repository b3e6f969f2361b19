"""Device telemetry read off the wire: the MQTT PUBLISH messages that devices send their broker, taken from
captured packets, for sites where the sensor sees the traffic (a mirror port, a capture file) but has no
account on the broker, or where the broker is not the operator's.

Only what a sensor can read without reassembling TCP streams: unencrypted MQTT 3.1, 3.1.1 and 5 on the broker
port, client to broker, in any packet the flow parser (:mod:`iotguard.flows.parse`) understands, whose
headers it reuses. Each TCP segment is read as a sequence of whole MQTT packets, and
each connection's sequence numbers are followed: when a packet runs past the end of its segment (a large
message split over segments), the rest of it is skipped as continuation, never read as packets of its own,
and reading resumes where the next packet starts, even in the middle of a segment; a segment read before (a
retransmission) is not read twice. A segment that starts neither at a packet boundary nor where one was
expected is skipped and counted, never guessed at. The protocol version of a connection (MQTT 5 adds
properties to PUBLISH) is learned from its CONNECT; a connection whose CONNECT was not seen is read as 3.1.1.

A message keeps its publisher's address and the broker's, so telemetry anomalies name the host that sent
them, as flow alerts do.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

import numpy as np

from iotguard.capture.batch import PacketBatch
from iotguard.flows.features import format_addresses
from iotguard.flows.parse import OK, Packets, parse
from iotguard.telemetry.detector import TelemetryMessage

MQTT_PORT = 1883
MAX_CONNECTIONS = 65_536  # connections remembered (version, next packet): least recently seen forgotten first
_SEQ_SPACE = 1 << 32
MAX_BEHIND = 1 << 20
"""A segment starting at most this many bytes before where the next packet was expected was read before; one
starting farther back is of another connection that reused the client port."""
MAX_PACKET = (1 << 28) + 4
"""The largest MQTT packet (a 4-byte remaining length): how far a split packet's rest can reach."""
Segment = tuple[int, int, int, str, str, int, int]
"""(payload start, payload end, timestamp µs, client address, broker address, client port, sequence number
of the first payload byte, as -1 - it for a SYN)."""


def _tcp_payloads(batch: PacketBatch, packets: Packets, port: int) -> list[Segment]:
    """The TCP segments sent to ``port`` that carry data or open a connection, from the flow parser's headers
    (array operations: most packets are not MQTT)."""
    if len(packets) == 0:
        return []
    assert packets.pay_at is not None
    syn = (packets.flags & 0x02) != 0
    sel = np.flatnonzero(
        (packets.reason == OK)
        & (packets.proto == 6)
        & (packets.dport == port)
        & ((packets.payload > 0) | syn)
    )
    if len(sel) == 0:
        return []
    data = batch.data
    start = packets.pay_at[sel]
    # the payload the IP header announces, as far as it was captured
    end = np.minimum(start + packets.payload[sel], batch.offset[sel].astype(np.int64) + batch.caplen[sel])
    keep = (start < end) | syn[sel]
    sel, start, end = sel[keep], start[keep], end[keep]
    tcp = start - packets.hdr[sel]
    seq = (_u16(data, tcp + 4) << 16) | _u16(data, tcp + 6)
    # a SYN's sequence number is the one before its first data byte; it starts a new connection (a reused
    # client port), so it is kept even without data: -1 - seq marks it
    seq = np.where(syn[sel], -1 - ((seq + 1) % _SEQ_SPACE), seq)
    clients = format_addresses(packets.src_hi[sel], packets.src_lo[sel])
    brokers = format_addresses(packets.dst_hi[sel], packets.dst_lo[sel])
    rows = zip(start, end, packets.ts_us[sel], clients, brokers, packets.sport[sel], seq, strict=True)
    return [(int(s), int(e), int(t), c, b, int(p), int(q)) for s, e, t, c, b, p, q in rows]


def _u16(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (data[at].astype(np.int64) << 8) | data[at + 1]


def _varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    """MQTT variable byte integer at ``pos``: (value, position after it), or None if cut or too long."""
    value = shift = 0
    for k in range(4):
        if pos + k >= len(buf):
            return None
        b = buf[pos + k]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos + k + 1
        shift += 7
    return None


class MqttTap:
    """Turns captured packets into :class:`TelemetryMessage` s: ``messages(batch)`` per packet batch.

    ``skipped`` counts segments that could not be read as whole MQTT packets, by reason."""

    def __init__(self, port: int = MQTT_PORT) -> None:
        self.port = port
        self.skipped: Counter[str] = Counter()
        self.messages_seen = 0
        self._versions: OrderedDict[tuple[str, int], int] = OrderedDict()
        # connection -> (sequence number where its next packet starts, whether a split packet comes first);
        # least recently seen first
        self._next: OrderedDict[tuple[str, int], tuple[int, bool]] = OrderedDict()

    def messages(self, batch: PacketBatch, packets: Packets | None = None) -> list[TelemetryMessage]:
        """The PUBLISH messages of a batch; ``packets``: the batch already parsed by the flow parser."""
        out: list[TelemetryMessage] = []
        data = batch.data
        if packets is None:
            packets = parse(batch)
        for start, end, ts_us, client, broker, client_port, seq in _tcp_payloads(batch, packets, self.port):
            conn = (client, client_port)
            if seq < 0:  # a new connection: what was known of an old one on this port is void
                seq = -1 - seq
                self._versions.pop(conn, None)
                self._expect(conn, seq, False)  # its first packet starts with its first data byte
                if start >= end:
                    continue
            resume = self._resume_at(conn, seq, end - start)
            if resume is None:
                continue
            at, anchored = resume
            segment = data[start + at : end].tobytes()
            read = self._segment(segment, ts_us / 1e6, client, broker, conn, out, anchored)
            if read is None:
                self._next.pop(conn, None)
            else:
                self._expect(conn, seq + at + read[0], read[1])
        self.messages_seen += len(out)
        return out

    def _expect(self, conn: tuple[str, int], seq: int, split: bool) -> None:
        self._next[conn] = (seq % _SEQ_SPACE, split)
        self._next.move_to_end(conn)
        while len(self._next) > MAX_CONNECTIONS:
            self._next.popitem(last=False)

    def _resume_at(self, conn: tuple[str, int], seq: int, length: int) -> tuple[int, bool] | None:
        """Where in a segment the connection's next packet starts, and whether that place is known (the
        expected next packet lies inside the segment) rather than assumed (nothing expected, or a segment
        went unseen: read from its start); None when the whole segment lies before the expected packet: the
        rest of a split packet, or a segment read before or arriving out of order (counted)."""
        expected = self._next.get(conn)
        if expected is None:
            return 0, False
        next_seq, split = expected
        ahead = (next_seq - seq) % _SEQ_SPACE  # how far the next packet starts after the segment's start
        if ahead > (MAX_PACKET if split else MAX_BEHIND):  # it starts after it, or far before it
            return 0, False
        if ahead >= length:
            self.skipped["continuation" if split else "retransmission"] += 1
            return None
        return ahead, True

    def _segment(
        self,
        buf: bytes,
        ts: float,
        client: str,
        broker: str,
        conn: tuple[str, int],
        out: list[TelemetryMessage],
        anchored: bool,
    ) -> tuple[int, bool] | None:
        """Read the whole MQTT packets of one segment into ``out``. Return how many bytes after the
        segment's start the next packet starts, and whether the last packet runs past the segment; None
        when that is not known (bytes that are not a packet). ``anchored``: the segment starts where a
        packet was expected to; if not, a first "packet" that runs past the segment is not believed (stray
        bytes could claim any length and blind the connection)."""
        pos = 0
        while pos < len(buf):
            kind = buf[pos] >> 4
            head = _varint(buf, pos + 1)
            if kind != 0 and head is not None and head[0] + head[1] > len(buf):
                if pos == 0 and not anchored:
                    self.skipped["not_at_packet_boundary"] += 1
                    return None
                self.skipped["cut_packet"] += 1  # its header tells where the next packet starts
                return head[0] + head[1], True
            if kind == 0 or head is None:
                self.skipped["not_at_packet_boundary" if pos == 0 else "cut_packet"] += 1
                return None
            length, body = head
            packet_end = body + length
            if kind == 1:  # CONNECT: protocol name (length-prefixed), then the protocol level
                if length >= 3:
                    name_len = int.from_bytes(buf[body : body + 2], "big")
                    level_at = body + 2 + name_len
                    if level_at < packet_end:
                        self._remember(conn, buf[level_at])
            elif kind == 3:
                message = self._publish(buf, pos, body, packet_end, ts, client, broker, conn)
                if message is None:
                    self.skipped["malformed_publish"] += 1
                else:
                    out.append(message)
            pos = packet_end
        return pos, False

    def _publish(
        self,
        buf: bytes,
        pos: int,
        body: int,
        end: int,
        ts: float,
        client: str,
        broker: str,
        conn: tuple[str, int],
    ) -> TelemetryMessage | None:
        flags = buf[pos] & 0x0F
        qos = (flags >> 1) & 3
        if qos == 3 or body + 2 > end:
            return None
        topic_len = int.from_bytes(buf[body : body + 2], "big")
        at = body + 2 + topic_len + (2 if qos else 0)
        if at > end:
            return None
        try:
            topic = buf[body + 2 : body + 2 + topic_len].decode("utf-8")
        except UnicodeDecodeError:
            return None
        if self._versions.get(conn) == 5:
            props = _varint(buf, at)
            if props is None or props[0] + props[1] > end:
                return None
            at = props[0] + props[1]
        if conn in self._versions:
            self._versions.move_to_end(conn)
        return TelemetryMessage(
            topic=topic,
            payload=buf[at:end],
            timestamp=ts,
            retained=bool(flags & 1),
            client=client,
            broker=broker,
        )

    def _remember(self, conn: tuple[str, int], level: int) -> None:
        self._versions[conn] = level
        self._versions.move_to_end(conn)
        while len(self._versions) > MAX_CONNECTIONS:
            self._versions.popitem(last=False)
