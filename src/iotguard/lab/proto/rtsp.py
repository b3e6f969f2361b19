"""RTSP 1.0 (RFC 2326) control messages and the SDP an IP camera describes its H.264 stream with."""

from __future__ import annotations


def _bits_to_bytes(bits: str) -> bytes:
    bits += "1"  # rbsp_stop_one_bit, then zero bits to the byte boundary
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _ue(value: int) -> str:
    """Exp-Golomb code of an unsigned value."""
    code = bin(value + 1)[2:]
    return "0" * (len(code) - 1) + code


def _sps() -> bytes:
    """SPS of a 640x360 Main-profile level 3.0 stream (23 macroblock rows, 8 lines cropped at the bottom)."""
    bits = "".join(
        [
            _ue(0),  # seq_parameter_set_id
            _ue(0),  # log2_max_frame_num_minus4
            _ue(0),  # pic_order_cnt_type
            _ue(2),  # log2_max_pic_order_cnt_lsb_minus4
            _ue(1),  # max_num_ref_frames
            "0",  # gaps_in_frame_num_value_allowed_flag
            _ue(39),  # pic_width_in_mbs_minus1 (640 / 16 - 1)
            _ue(22),  # pic_height_in_map_units_minus1 (368 / 16 - 1)
            "1",  # frame_mbs_only_flag
            "1",  # direct_8x8_inference_flag
            "1",  # frame_cropping_flag
            _ue(0) + _ue(0) + _ue(0) + _ue(4),  # crop left, right, top, bottom (x2 lines)
            "0",  # vui_parameters_present_flag
        ]
    )
    return bytes((0x67, 77, 0x00, 30)) + _bits_to_bytes(bits)


def _pps() -> bytes:
    bits = "".join(
        [
            _ue(0),  # pic_parameter_set_id
            _ue(0),  # seq_parameter_set_id
            "0",  # entropy_coding_mode_flag (CAVLC)
            "0",  # bottom_field_pic_order_in_frame_present_flag
            _ue(0),  # num_slice_groups_minus1
            _ue(0),  # num_ref_idx_l0_default_active_minus1
            _ue(0),  # num_ref_idx_l1_default_active_minus1
            "0",  # weighted_pred_flag
            "00",  # weighted_bipred_idc
            "1",  # pic_init_qp_minus26 = se(0)
            "1",  # pic_init_qs_minus26 = se(0)
            "1",  # chroma_qp_index_offset = se(0)
            "1",  # deblocking_filter_control_present_flag
            "0",  # constrained_intra_pred_flag
            "0",  # redundant_pic_cnt_present_flag
        ]
    )
    return bytes((0x68,)) + _bits_to_bytes(bits)


# Sequence and picture parameter sets of the camera's 640x360 H.264 stream (what sprop-parameter-sets carries).
SPS = _sps()
PPS = _pps()


def request(
    method: str, url: str, cseq: int, headers: list[tuple[str, str]] = (), agent: str = "LibVLC/3.0.18"
) -> bytes:
    lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {agent}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def response(
    cseq: int, headers: list[tuple[str, str]] = (), body: bytes = b"", status: int = 200, date: str = ""
) -> bytes:
    reason = {200: "OK", 401: "Unauthorized"}.get(status, "OK")
    lines = [f"RTSP/1.0 {status} {reason}", f"CSeq: {cseq}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if date:
        lines.append(f"Date: {date}")
    if body:
        lines += ["Content-Type: application/sdp", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def sdp(camera_ip: str, url: str, session_id: int) -> bytes:
    import base64

    sprop = base64.b64encode(SPS).decode() + "," + base64.b64encode(PPS).decode()
    lines = [
        "v=0",
        f"o=- {session_id} {session_id} IN IP4 {camera_ip}",
        "s=Media Presentation",
        "e=NONE",
        "b=AS:5100",
        "t=0 0",
        f"a=control:{url}/",
        "m=video 0 RTP/AVP 96",
        "c=IN IP4 0.0.0.0",
        "b=AS:5000",
        "a=recvonly",
        "a=x-dimensions:640,360",
        f"a=control:{url}/trackID=1",
        "a=rtpmap:96 H264/90000",
        f"a=fmtp:96 profile-level-id=4d001e;packetization-mode=1;sprop-parameter-sets={sprop}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()
