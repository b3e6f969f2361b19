"""A TCP connection as it looks on the wire: handshake, data with delayed ACKs, retransmissions, FIN or RST.

Each side keeps its real sequence and acknowledgement numbers, advertised window (scaled once both SYNs offered
window scaling), negotiated options (MSS, SACK-permitted, timestamps) and its own IP identification counter.
Callers drive the conversation forward in time (``connect``, ``send``, ``request``, ``close`` or ``abort``);
every call returns the capture time of the last segment it produced, and replies are timed from the hosts'
latencies, so causality always holds. A receiver acknowledges every second full segment at once and otherwise
waits for its delayed-ACK timer unless it has data to send back first (then the ACK rides on that data).
Transfers of many segments are built with the array builders in one go.
"""

from __future__ import annotations

import random
import struct
from typing import TYPE_CHECKING

import numpy as np

from iotguard.lab import bulk
from iotguard.lab.packets import (
    ACK,
    FIN,
    PROTO_TCP,
    PSH,
    RST,
    SYN,
    syn_options,
    synack_options,
    words,
)

if TYPE_CHECKING:
    from iotguard.lab.network import Host
    from iotguard.lab.sim import Sim

_RATE = 40e6 / 8  # bytes per second a sender puts on the wire (Wi-Fi/LAN uplink)
_BULK_SEGMENTS = 48  # above this many segments a send is built with numpy (below, the scalar path is faster)


class _Side:
    """One end of the connection, with the header fields and checksum parts that never change precomputed."""

    __slots__ = (
        "host",
        "port",
        "isn",
        "nxt",
        "rcv",
        "wnd",
        "shift",
        "ident",
        "ack_due",
        "unacked",
        "cwnd",
        "ts_recent",
        "eth",
        "ip_sum",
        "tcp_sum",
        "route",
        "peer",
    )

    def __init__(self, host: Host, port: int, rng: random.Random) -> None:
        self.host = host
        self.port = port
        self.isn = rng.getrandbits(32)
        self.nxt = self.isn  # next sequence number to send
        self.rcv = 0  # next sequence number expected from the peer (our ACK value)
        self.wnd = host.stack.window
        self.shift: int | None = None
        self.ident = rng.randrange(0, 65536)
        self.ack_due: float | None = None  # time of the pending (delayed) pure ACK, if any
        self.unacked = 0  # full segments received and not yet acknowledged
        self.cwnd = 10
        self.ts_recent = 0

    def wire(self, peer: _Side, src_mac: bytes, dst_mac: bytes) -> None:
        """Precompute this side's constant header bytes and checksum terms towards ``peer``."""
        addresses = words(self.host.ip_b + peer.host.ip_b)
        self.eth = dst_mac + src_mac + b"\x08\x00"
        self.ip_sum = 0x4500 + 0x4000 + ((self.host.ttl << 8) | PROTO_TCP) + addresses
        self.tcp_sum = addresses + PROTO_TCP + self.port + peer.port
        self.route = (self.host.ttl, self.host.ip_b, peer.host.ip_b, self.port, peer.port)
        self.peer = peer

    def window_field(self) -> int:
        if self.shift is None:
            return min(self.wnd, 65535)
        return min(self.wnd >> self.shift, 65535)

    def next_ident(self) -> int:
        self.ident = (self.ident + 1) & 0xFFFF
        return self.ident


_IP_TCP = struct.Struct("!BBHHHBBH4s4sHHIIHHHH")
_TS = struct.Struct("!BBBBII")  # NOP, NOP, timestamps (kind 8, length 10)


class TcpConn:
    """One connection from ``client`` (ephemeral port unless ``sport``) to ``server:dport``."""

    def __init__(
        self,
        sim: Sim,
        client: Host,
        server: Host,
        dport: int,
        *,
        sport: int | None = None,
        tag: int = 0,
        loss: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.sim = sim
        self.rng = rng or sim.rng("tcp", client.name, server.name, dport)
        self.c = _Side(client, sport if sport is not None else client.ephemeral_port(), self.rng)
        self.s = _Side(server, dport, self.rng)
        c_mac, s_mac = sim.net.macs(client, server)
        self.c.wire(self.s, c_mac, s_mac)
        self.s.wire(self.c, s_mac, c_mac)
        self._add = sim.cap.add_parts
        self.tag = tag
        self.loss = loss
        self.timestamps = False
        self.sack = False
        self.mss = min(client.stack.mss, server.stack.mss)
        self.open = False

    # -- helpers ------------------------------------------------------------------------------------------
    def _peer(self, side: _Side) -> _Side:
        return self.s if side is self.c else self.c

    def _emit(
        self,
        t: float,
        side: _Side,
        flags: int,
        payload: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        options: bytes | None = None,
        window: int | None = None,
    ) -> None:
        # The hot path of the whole generator: plain integer arithmetic, one struct.pack, no helper calls.
        peer = side.peer
        seq = (side.nxt if seq is None else seq) & 0xFFFFFFFF
        ack = ((side.rcv if ack is None else ack) & 0xFFFFFFFF) if flags & ACK else 0
        if window is None:
            window = side.window_field()
        if self.timestamps:
            host = side.host
            tsval = (host.ts_base + int(t * host.stack.ts_hz)) & 0xFFFFFFFF
            if options is None:
                ecr = side.ts_recent
                options = _TS.pack(1, 1, 8, 10, tsval, ecr)
                opt_sum = 0x0101 + 0x080A + (tsval >> 16) + (tsval & 0xFFFF) + (ecr >> 16) + (ecr & 0xFFFF)
            else:
                opt_sum = words(options)
            peer.ts_recent = tsval
        elif options is None:
            options = b""
            opt_sum = 0
        else:
            opt_sum = words(options)
        hlen = 20 + len(options)
        seg_len = hlen + len(payload)
        side.ident = ident = (side.ident + 1) & 0xFFFF
        off_flags = (hlen << 10) | flags
        ip_csum = 0xFFFF - ((side.ip_sum + 20 + seg_len + ident) % 0xFFFF or 0xFFFF)
        total = (
            side.tcp_sum
            + seg_len
            + (seq >> 16)
            + (seq & 0xFFFF)
            + (ack >> 16)
            + (ack & 0xFFFF)
            + off_flags
            + window
            + opt_sum
        )
        if payload:
            total += (
                int.from_bytes(payload, "big") << 8 if len(payload) & 1 else int.from_bytes(payload, "big")
            )
        tcp_csum = 0xFFFF - (total % 0xFFFF or 0xFFFF)
        ttl, src, dst, sport, dport = side.route
        head = _IP_TCP.pack(
            0x45,
            0,
            20 + seg_len,
            ident,
            0x4000,
            ttl,
            PROTO_TCP,
            ip_csum,
            src,
            dst,
            sport,
            dport,
            seq,
            ack,
            off_flags,
            window,
            tcp_csum,
            0,
        )
        self._add(t, (side.eth, head, options, payload), 54 + len(options) + len(payload), self.tag)

    def _flush(self, t: float) -> None:
        """Send the delayed ACKs that fall due before ``t``."""
        for side in (self.c, self.s):
            if side.ack_due is not None and side.ack_due <= t:
                due, side.ack_due = side.ack_due, None
                side.unacked = 0
                self._emit(due, side, ACK)

    def reply_at(self, t: float, responder: Host, think: float = 0.0) -> float:
        """When a reply from ``responder`` to a segment seen at ``t`` is seen, after ``think`` seconds of work."""
        return t + 2 * responder.delay + think

    @property
    def client_port(self) -> int:
        return self.c.port

    # -- handshake ---------------------------------------------------------------------------------------
    def connect(self, t: float, *, syn_lost: bool | None = None) -> float:
        """Three-way handshake starting at ``t``; returns the time of the client's ACK."""
        c, s = self.c, self.s
        cs, ss = c.host.stack, s.host.stack
        if syn_lost is None:
            syn_lost = self.rng.random() < self.loss
        c_ts = c.host.tsval(t) if cs.timestamps else None
        opts = syn_options(cs.mss, cs.sack, cs.wscale, c_ts)
        self._emit(t, c, SYN, options=opts, window=min(cs.window, 65535))
        if syn_lost:  # the SYN died after the capture point: the client's retransmission timer fires
            t += 1.0 + self.rng.uniform(0, 0.01)
            c_ts = c.host.tsval(t) if cs.timestamps else None
            self._emit(
                t, c, SYN, options=syn_options(cs.mss, cs.sack, cs.wscale, c_ts), window=min(cs.window, 65535)
            )
        c.nxt += 1
        s.rcv = c.nxt
        self.timestamps = cs.timestamps and ss.timestamps
        self.sack = cs.sack and ss.sack
        scaled = cs.wscale is not None and ss.wscale is not None
        t = self.reply_at(t, s.host, self.rng.uniform(2e-5, 2e-4))
        s_ts = s.host.tsval(t) if self.timestamps else None
        opts = synack_options(ss.mss, self.sack, ss.wscale if scaled else None, s_ts, c_ts or 0)
        self._emit(t, s, SYN | ACK, options=opts, window=min(ss.window, 65535))
        s.nxt += 1
        c.rcv = s.nxt
        if self.timestamps:
            c.ts_recent = s_ts or 0
            s.ts_recent = c_ts or 0
        if scaled:
            c.shift, s.shift = cs.wscale, ss.wscale
        t = self.reply_at(t, c.host, self.rng.uniform(1e-5, 1e-4))
        self._emit(t, c, ACK)
        self.open = True
        return t

    def refused(self, t: float) -> float:
        """SYN answered by RST (closed port); returns the time of the RST."""
        c, s = self.c, self.s
        cs = c.host.stack
        self._emit(
            t,
            c,
            SYN,
            options=syn_options(cs.mss, cs.sack, cs.wscale, c.host.tsval(t) if cs.timestamps else None),
            window=min(cs.window, 65535),
        )
        c.nxt += 1
        t = self.reply_at(t, s.host, 3e-5)
        self._emit(t, s, RST | ACK, seq=0, ack=c.nxt, options=b"", window=0)
        return t

    # -- data ---------------------------------------------------------------------------------------------
    def send(self, t: float, from_client: bool, data: bytes, *, lose: bool | None = None) -> float:
        """Send ``data`` from one side at ``t``; returns the capture time of its last segment.

        Segments leave in flights limited by the congestion window (slow start from ten segments) and the
        receiver's window; the next flight follows one round trip later."""
        side = self.c if from_client else self.s
        peer = side.peer
        self._flush(t)
        if side.ack_due is not None:  # our own pending ACK rides on this data
            side.ack_due = None
            side.unacked = 0
        mss = self.mss - (12 if self.timestamps else 0)
        size = len(data)
        if size > mss * _BULK_SEGMENTS:
            return self._send_bulk(t, side, peer, data, mss)
        chunks = [data[i : i + mss] for i in range(0, size, mss)] if size > mss else [data]
        n = len(chunks)
        if lose is None:
            lose = n == 1 and self.loss > 0 and self.rng.random() < self.loss
        gap = (mss + 66) / _RATE
        flight = max(2, min(side.cwnd, (peer.wnd - mss) // mss))
        rtt = 2 * (side.host.delay + peer.host.delay) + 2e-4
        ack_delay = 2 * peer.host.delay + 5e-5
        emit = self._emit
        sent_in_flight = 0
        flight_start = t
        for i, chunk in enumerate(chunks, 1):
            last = i == n
            emit(t, side, ACK | PSH if last else ACK, chunk)
            side.nxt += len(chunk)
            if lose and last:  # lost after the capture point: retransmitted when the RTO fires
                t += side.host.stack.rto + self.rng.uniform(0, 0.02)
                side.nxt -= len(chunk)
                emit(t, side, ACK | PSH, chunk)
                side.nxt += len(chunk)
            peer.rcv = side.nxt
            peer.unacked += 1
            if peer.unacked >= 2:
                emit(t + ack_delay, peer, ACK)
                peer.unacked = 0
                peer.ack_due = None
            else:
                peer.ack_due = t + 2 * peer.host.delay + peer.host.stack.delack
            if not last:
                sent_in_flight += 1
                if sent_in_flight >= flight:  # wait for the ACKs of this flight
                    t = max(t + gap, flight_start + rtt)
                    flight_start = t
                    sent_in_flight = 0
                    side.cwnd = min(side.cwnd * 2, 512)
                    flight = max(2, min(side.cwnd, (peer.wnd - mss) // mss))
                else:
                    t += gap
        return t

    def _send_bulk(self, t: float, side: _Side, peer: _Side, data: bytes, mss: int) -> float:
        """Many segments at once: slow start limited by the receive window, an ACK for every second segment."""
        n = -(-len(data) // mss)
        lengths = np.full(n, mss, dtype=np.int64)
        lengths[-1] = len(data) - mss * (n - 1)
        seq = side.nxt + np.concatenate(([0], np.cumsum(lengths)[:-1]))
        times = np.empty(n)
        rate = _RATE
        rtt = 2 * (side.host.delay + peer.host.delay) + 2e-4
        window_segs = max(2, (peer.wnd - mss) // mss - 1)
        cwnd = side.cwnd
        now, i = t, 0
        while i < n:
            burst = min(cwnd, window_segs, n - i)
            times[i : i + burst] = now + np.arange(burst) * ((mss + 66) / rate)
            i += burst
            now = max(now + rtt, times[i - 1] + (mss + 66) / rate)
            cwnd = min(cwnd * 2, 512)
        side.cwnd = cwnd
        payload = np.frombuffer(data + b"\x00" * (n * mss - len(data)), dtype=np.uint8).reshape(n, mss)
        flags = np.full(n, ACK, dtype=np.int64)
        flags[-1] |= PSH
        # pure ACKs from the receiver after every second segment (and the last one)
        acked = np.arange(1, n, 2)
        if acked[-1:].size == 0 or acked[-1] != n - 1:
            acked = np.append(acked, n - 1)
        ack_times = times[acked] + 2 * peer.host.delay + 5e-5
        ack_values = seq[acked] + lengths[acked]
        src_mac, dst_mac = self.sim.net.macs(side.host, peer.host)
        ident = (side.ident + 1 + np.arange(n)) & 0xFFFF
        side.ident = int(ident[-1])
        a_ident = (peer.ident + 1 + np.arange(len(acked))) & 0xFFFF
        peer.ident = int(a_ident[-1])
        d_opts = a_opts = b""
        if self.timestamps:
            d_opts = _ts_options(side.host, times, peer.host, times - rtt / 2)
            a_opts = _ts_options(peer.host, ack_times, side.host, times[acked])
        frames = bulk.tcp_frames(
            src_mac=src_mac,
            dst_mac=dst_mac,
            src=side.host.ip_b,
            dst=peer.host.ip_b,
            sport=side.port,
            dport=peer.port,
            seq=seq,
            ack=side.rcv,
            flags=flags,
            window=side.window_field(),
            n=n,
            options=d_opts,
            payload=payload,
            lengths=lengths,
            ident=ident,
            ttl=side.host.ttl,
        )
        self.sim.cap.add_frames(times, frames, self.tag)
        acks = bulk.tcp_frames(
            src_mac=dst_mac,
            dst_mac=src_mac,
            src=peer.host.ip_b,
            dst=side.host.ip_b,
            sport=peer.port,
            dport=side.port,
            seq=peer.nxt,
            ack=ack_values,
            flags=ACK,
            window=peer.window_field(),
            n=len(acked),
            options=a_opts,
            ident=a_ident,
            ttl=peer.host.ttl,
        )
        self.sim.cap.add_frames(ack_times, acks, self.tag)
        side.nxt += len(data)
        peer.rcv = side.nxt
        peer.unacked = 0
        peer.ack_due = None
        if self.timestamps:
            side.ts_recent = peer.host.tsval(float(ack_times[-1]))
            peer.ts_recent = side.host.tsval(float(times[-1]))
        return float(max(times[-1], ack_times[-1]))

    def send_many(self, times: np.ndarray, from_client: bool, messages: list[bytes]) -> float:
        """One segment per message at ``times`` (an application writing small messages with TCP_NODELAY), the
        receiver acknowledging every second one; built with numpy. Messages must fit in one segment each."""
        side = self.c if from_client else self.s
        peer = self._peer(side)
        n = len(messages)
        if n == 0:
            return float("-inf")
        self._flush(float(times[0]))
        side.ack_due = None
        lengths = np.fromiter(map(len, messages), dtype=np.int64, count=n)
        if lengths.max() > self.mss - (12 if self.timestamps else 0):
            raise ValueError("send_many needs messages that fit in one segment")
        width = int(lengths.max())
        payload = np.frombuffer(b"".join(m.ljust(width, b"\x00") for m in messages), dtype=np.uint8).reshape(
            n, width
        )
        seq = side.nxt + np.concatenate(([0], np.cumsum(lengths)[:-1]))
        acked = np.arange(1, n, 2)
        ack_times = times[acked] + 2 * peer.host.delay + 5e-5
        ack_values = seq[acked] + lengths[acked]
        src_mac, dst_mac = self.sim.net.macs(side.host, peer.host)
        ident = (side.ident + 1 + np.arange(n)) & 0xFFFF
        side.ident = int(ident[-1])
        d_opts = a_opts = b""
        if self.timestamps:
            d_opts = _ts_options(side.host, times, peer.host, times - 2 * peer.host.delay)
            a_opts = _ts_options(peer.host, ack_times, side.host, times[acked])
        frames = bulk.tcp_frames(
            src_mac=src_mac,
            dst_mac=dst_mac,
            src=side.host.ip_b,
            dst=peer.host.ip_b,
            sport=side.port,
            dport=peer.port,
            seq=seq,
            ack=side.rcv,
            flags=ACK | PSH,
            window=side.window_field(),
            n=n,
            options=d_opts,
            payload=payload,
            lengths=lengths,
            ident=ident,
            ttl=side.host.ttl,
        )
        self.sim.cap.add_frames(times, frames, self.tag)
        if len(acked):
            a_ident = (peer.ident + 1 + np.arange(len(acked))) & 0xFFFF
            peer.ident = int(a_ident[-1])
            acks = bulk.tcp_frames(
                src_mac=dst_mac,
                dst_mac=src_mac,
                src=peer.host.ip_b,
                dst=side.host.ip_b,
                sport=peer.port,
                dport=side.port,
                seq=peer.nxt,
                ack=ack_values,
                flags=ACK,
                window=peer.window_field(),
                n=len(acked),
                options=a_opts,
                ident=a_ident,
                ttl=peer.host.ttl,
            )
            self.sim.cap.add_frames(ack_times, acks, self.tag)
        side.nxt += int(lengths.sum())
        peer.rcv = side.nxt
        peer.unacked = 0 if n % 2 == 0 else 1
        peer.ack_due = None if n % 2 == 0 else float(times[-1]) + 2 * peer.host.delay + peer.host.stack.delack
        if self.timestamps:
            peer.ts_recent = side.host.tsval(float(times[-1]))
        return float(times[-1])

    def request(self, t: float, request: bytes, response: bytes, think: float = 0.001) -> float:
        """Client sends ``request`` at ``t``; the server answers ``think`` seconds after it arrives."""
        t = self.send(t, True, request)
        return self.send(self.reply_at(t, self.s.host, think), False, response)

    # -- teardown -------------------------------------------------------------------------------------------
    def close(self, t: float, from_client: bool = True) -> float:
        """Orderly FIN teardown started by one side; returns the time of the final ACK."""
        side = self.c if from_client else self.s
        peer = self._peer(side)
        self._flush(t)
        side.ack_due = None
        self._emit(t, side, FIN | ACK)
        side.nxt += 1
        peer.rcv = side.nxt
        peer.ack_due = None
        t = self.reply_at(t, peer.host, self.rng.uniform(3e-5, 3e-4))
        if self.rng.random() < 0.5:  # the peer acknowledges, then its application closes a moment later
            self._emit(t, peer, ACK)
            t += self.rng.uniform(2e-4, 3e-3)
        self._emit(t, peer, FIN | ACK)
        peer.nxt += 1
        side.rcv = peer.nxt
        t = self.reply_at(t, side.host, 3e-5)
        self._emit(t, side, ACK)
        self.open = False
        return t

    def abort(self, t: float, from_client: bool = True) -> float:
        """Tear down with RST (as apps that close with unread data, or SO_LINGER 0, do)."""
        side = self.c if from_client else self.s
        self._flush(t)
        side.ack_due = None
        self._emit(t, side, RST | ACK)
        self._peer(side).ack_due = None
        self.open = False
        return t

    def finish(self) -> None:
        """Emit ACKs still pending (call when the conversation simply stops, e.g. at the end of capture)."""
        self._flush(float("inf"))


def _ts_options(host: Host, times: np.ndarray, peer: Host, peer_times: np.ndarray) -> np.ndarray:
    n = len(times)
    hz = host.stack.ts_hz
    tsval = (host.ts_base + (times * hz).astype(np.int64)) & 0xFFFFFFFF
    tsecr = (peer.ts_base + (np.maximum(peer_times, 0) * peer.stack.ts_hz).astype(np.int64)) & 0xFFFFFFFF
    opts = np.zeros((n, 12), dtype=np.uint8)
    opts[:, 0] = 1
    opts[:, 1] = 1
    opts[:, 2] = 8
    opts[:, 3] = 10
    opts[:, 4:8] = tsval.astype(">u4").view(np.uint8).reshape(n, 4)
    opts[:, 8:12] = tsecr.astype(">u4").view(np.uint8).reshape(n, 4)
    return opts
