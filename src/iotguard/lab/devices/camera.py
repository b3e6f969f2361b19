"""IP cameras (Hikvision-style, embedded Linux) streaming H.264 over RTP/UDP to the recorder, controlled by RTSP.

The recorder (NVR) opens an RTSP session over TCP: OPTIONS, DESCRIBE (first refused with a Digest challenge,
then answered with the SDP), SETUP (client and server RTP/RTCP ports), PLAY, and a GET_PARAMETER keep-alive
every ~30 s. The camera then sends its stream: one access unit per frame at 10-15 fps, a key frame (preceded by
its SPS and PPS) every two seconds, every NAL unit larger than the path MTU split into FU-A fragments
(RFC 6184), the marker bit on each frame's last packet, and an RTCP sender report every five seconds, answered
by the recorder's receiver report. The stream is built with numpy, a few seconds at a time. A tablet now and
then fetches a JPEG snapshot over HTTP, a transfer of tens of kilobytes.
"""

from __future__ import annotations

import hashlib

import numpy as np

from iotguard.lab import bulk
from iotguard.lab.devices.common import boot, cloud_check
from iotguard.lab.network import Host
from iotguard.lab.proto import http, rtp, rtsp
from iotguard.lab.proto.jpeg import jpeg
from iotguard.lab.sim import Sim
from iotguard.lab.tcp import TcpConn

MAX_PAYLOAD = 1400  # RTP payload bytes per packet
CLOUD = "dev.hik-connect.example"
_CHUNK_S = 8.0  # seconds of stream built per numpy batch


def simulate(sim: Sim, cam: Host, nvr: Host, start: float, end: float, viewers: list[Host]) -> None:
    rng = sim.rng("camera", cam.name)
    boot(sim, cam, start)
    fps = rng.choice((10, 12, 15))
    kbps = rng.uniform(160, 420)  # a 640x360 sub-stream (Hikvision's default is 256-512 kbit/s)
    url = f"rtsp://{cam.ip}:554/Streaming/Channels/102"
    client_port = rng.randrange(50000, 60000, 2)
    server_port = rng.randrange(8200, 8300, 2)
    ssrc = rng.getrandbits(32)
    session = f"{rng.getrandbits(32):08X}"

    t = sim.arp(start + rng.uniform(2, 4), nvr, cam)
    conn = TcpConn(sim, nvr, cam, 554, loss=0.005, rng=rng)
    t = conn.connect(t)
    date = "Tue, 14 May 2024 09:00:00 GMT"
    cseq = 1
    t = conn.request(
        t + 1e-4,
        rtsp.request("OPTIONS", url, cseq),
        rtsp.response(
            cseq,
            [("Public", "OPTIONS, DESCRIBE, PLAY, PAUSE, SETUP, TEARDOWN, SET_PARAMETER, GET_PARAMETER")],
            date=date,
        ),
        0.002,
    )
    cseq += 1
    nonce = hashlib.md5(f"{cam.name}{rng.random()}".encode()).hexdigest()
    realm = f"IP Camera({cam.mac.hex()[6:].upper()})"
    challenge = [("WWW-Authenticate", f'Digest realm="{realm}", nonce="{nonce}", stale="FALSE"')]
    t = conn.request(
        t + 1e-3,
        rtsp.request("DESCRIBE", url, cseq, [("Accept", "application/sdp")]),
        rtsp.response(cseq, challenge, status=401, date=date),
        0.002,
    )
    cseq += 1
    answer = hashlib.md5(f"admin:{realm}:{nonce}:{url}".encode()).hexdigest()
    auth = (
        "Authorization",
        f'Digest username="admin", realm="{realm}", nonce="{nonce}", uri="{url}", response="{answer}"',
    )
    t = conn.request(
        t + 1e-3,
        rtsp.request("DESCRIBE", url, cseq, [("Accept", "application/sdp"), auth]),
        rtsp.response(
            cseq, [("Content-Base", url + "/")], rtsp.sdp(cam.ip, url, rng.getrandbits(40)), date=date
        ),
        0.004,
    )
    cseq += 1
    transport = f"RTP/AVP;unicast;client_port={client_port}-{client_port + 1}"
    t = conn.request(
        t + 1e-3,
        rtsp.request("SETUP", f"{url}/trackID=1", cseq, [("Transport", transport), auth]),
        rtsp.response(
            cseq,
            [
                ("Session", f"{session};timeout=60"),
                (
                    "Transport",
                    f'{transport};server_port={server_port}-{server_port + 1};ssrc={ssrc:08X};mode="play"',
                ),
            ],
            date=date,
        ),
        0.003,
    )
    cseq += 1
    seq0 = rng.randrange(0, 65536)
    ts0 = rng.getrandbits(32)
    t = conn.request(
        t + 1e-3,
        rtsp.request("PLAY", url + "/", cseq, [("Session", session), ("Range", "npt=0.000-"), auth]),
        rtsp.response(
            cseq,
            [("Session", session), ("RTP-Info", f"url={url}/trackID=1;seq={seq0};rtptime={ts0}")],
            date=date,
        ),
        0.003,
    )
    stream_start = t + 0.02
    _stream(sim, cam, nvr, rng, stream_start, end, fps, kbps, ssrc, seq0, ts0, server_port, client_port)
    # RTSP keep-alive over the control connection, RTCP reports beside the stream
    nvr_ssrc = rng.getrandbits(32)
    ka = stream_start + rng.uniform(25, 35)
    while ka < end:
        cseq += 1
        conn.request(
            ka,
            rtsp.request("GET_PARAMETER", url + "/", cseq, [("Session", session), auth]),
            rtsp.response(cseq, [("Session", session)], date=date),
            0.002,
        )
        ka += rng.uniform(28, 32)
    conn.finish()
    sr = stream_start + rng.uniform(1, 5)
    sent = 0
    while sr < end:
        sent += int(kbps * 1000 / 8 * 5 / MAX_PAYLOAD)
        report = rtp.sender_report(
            ssrc,
            sim.base_unix + sr,
            ts0 + int((sr - stream_start) * 90000),
            sent,
            sent * MAX_PAYLOAD,
            f"{cam.name}@{cam.ip}",
        )
        sim.udp(sr, cam, nvr, server_port + 1, client_port + 1, report)
        rr_at = sr + rng.uniform(0.5, 2.5)
        if rr_at < end:
            rr = rtp.receiver_report(
                nvr_ssrc, ssrc, seq0 + sent, rng.randrange(20, 400), 0, 0, "nvr@" + nvr.ip
            )
            sim.udp(rr_at, nvr, cam, client_port + 1, server_port + 1, rr)
        sr += 5.0
    # cloud check-ins and the odd snapshot viewer
    at = start + rng.uniform(60, 900)
    while at < end:
        cloud_check(sim, cam, at, CLOUD, "DS-2CD1043G0", "V5.7.3_build220112")
        at += rng.uniform(900, 1800)
    for viewer in viewers:
        at = start + rng.uniform(10, 90)
        while at < end:
            _snapshot(sim, viewer, cam, at, rng, realm)
            at += rng.expovariate(1 / 180)


def _snapshot(sim: Sim, viewer: Host, cam: Host, t: float, rng, realm: str) -> None:
    t = sim.arp(t, viewer, cam)
    conn = TcpConn(sim, viewer, cam, 80, loss=0.01, rng=rng)
    t = conn.connect(t)
    path = "/ISAPI/Streaming/channels/101/picture"
    req = http.request(
        "GET",
        path,
        cam.ip,
        [
            ("User-Agent", "HikConnect/5.6.0 (Android 13)"),
            ("Authorization", f'Digest username="admin", realm="{realm}", uri="{path}"'),
        ],
    )
    size = rng.randrange(25_000, 90_000)
    resp = http.response(200, jpeg(rng, size), content_type="image/jpeg", server="App-webs/", close=True)
    t = conn.request(t + 1e-4, req, resp, think=rng.uniform(0.03, 0.12))
    conn.close(t + 1e-3, from_client=False)


def _stream(
    sim: Sim,
    cam: Host,
    nvr: Host,
    rng,
    start: float,
    end: float,
    fps: int,
    kbps: float,
    ssrc: int,
    seq0: int,
    ts0: int,
    sport: int,
    dport: int,
) -> None:
    npr = np.random.default_rng(rng.getrandbits(64))
    n_frames = int((end - start) * fps)
    if n_frames <= 0:
        return
    gop = 2 * fps
    idx = np.arange(n_frames)
    key = idx % gop == 0
    ratio = 10.0
    p_size = kbps * 1000 / 8 * (gop / fps) / (gop - 1 + ratio)
    size = np.where(key, ratio, 1.0) * p_size * npr.lognormal(0, 0.25, n_frames)
    size = np.maximum(size, 60).astype(np.int64)  # NAL unit bytes, header included
    frame_t = start + idx / fps + npr.normal(0, 0.002, n_frames).clip(-0.004, 0.004)
    per_chunk = max(1, int(_CHUNK_S * fps))
    seq = seq0
    for lo in range(0, n_frames, per_chunk):
        hi = min(n_frames, lo + per_chunk)
        seq = _frames(
            sim,
            cam,
            nvr,
            npr,
            frame_t[lo:hi],
            size[lo:hi],
            key[lo:hi],
            idx[lo:hi],
            fps,
            ssrc,
            seq,
            ts0,
            sport,
            dport,
        )


def _frames(sim, cam, nvr, npr, frame_t, size, key, idx, fps, ssrc, seq, ts0, sport, dport) -> int:
    chunk = MAX_PAYLOAD - 2
    frags = np.where(size <= MAX_PAYLOAD, 1, -(-(size - 1) // chunk))
    extra = np.where(key, 2, 0)  # SPS and PPS ahead of every key frame
    per_frame = frags + extra
    n = int(per_frame.sum())
    frame_of = np.repeat(np.arange(len(size)), per_frame)
    first = np.concatenate(([0], np.cumsum(per_frame)[:-1]))
    k = np.arange(n) - first[frame_of]  # packet index within its frame
    ex = extra[frame_of]
    is_sps = (ex > 0) & (k == 0)
    is_pps = (ex > 0) & (k == 1)
    j = k - ex  # fragment index
    nf = frags[frame_of]
    fsize = size[frame_of]
    single = nf == 1
    last_chunk = (fsize - 1) - chunk * (nf - 1)
    plen = np.where(single, fsize, 2 + np.where(j == nf - 1, last_chunk, chunk))
    plen = np.where(is_sps, len(rtsp.SPS), np.where(is_pps, len(rtsp.PPS), plen))
    marker = (j == nf - 1) & ~is_sps & ~is_pps
    nal_type = np.where(key[frame_of], 5, 1)
    nri = np.where(key[frame_of], 3, 2)
    width = 12 + MAX_PAYLOAD
    pay = np.frombuffer(npr.bytes(n * width), dtype=np.uint8).reshape(n, width).copy()
    pay[:, 0] = 0x80
    pay[:, 1] = 96 | (marker.astype(np.uint8) << 7)
    seqs = (seq + np.arange(n)) & 0xFFFF
    pay[:, 2:4] = seqs.astype(">u2").view(np.uint8).reshape(n, 2)
    rtp_ts = (ts0 + idx[frame_of] * (90000 // fps)) & 0xFFFFFFFF
    pay[:, 4:8] = rtp_ts.astype(">u4").view(np.uint8).reshape(n, 4)
    pay[:, 8:12] = np.frombuffer(ssrc.to_bytes(4, "big"), dtype=np.uint8)
    pay[:, 12] = np.where(single, (nri << 5) | nal_type, (nri << 5) | 28)
    fu_header = nal_type | np.where(j == 0, 0x80, 0) | np.where(j == nf - 1, 0x40, 0)
    pay[:, 13] = np.where(single, pay[:, 13], fu_header)
    sps = np.frombuffer(rtsp.SPS, dtype=np.uint8)
    pps = np.frombuffer(rtsp.PPS, dtype=np.uint8)
    pay[is_sps, 12 : 12 + len(sps)] = sps
    pay[is_pps, 12 : 12 + len(pps)] = pps
    # packets of one frame leave back to back at the camera's uplink rate
    t = frame_t[frame_of] + k * npr.uniform(1.5e-4, 4e-4)
    src_mac, dst_mac = sim.net.macs(cam, nvr)
    ident = (cam.ident() + np.arange(n)) & 0xFFFF
    cam._ident = int(ident[-1])
    frames = bulk.udp_frames(
        src_mac=src_mac,
        dst_mac=dst_mac,
        src=cam.ip_b,
        dst=nvr.ip_b,
        sport=sport,
        dport=dport,
        payload=pay,
        lengths=12 + plen,
        ident=ident,
        ttl=cam.ttl,
    )
    sim.cap.add_frames(t, frames)
    return int(seq + n) & 0xFFFF
