"""Turn emitted flow-table rows into flow records: identity columns and CICFlowMeter features.

Every definition follows the CNS2022 release of the corrected CICFlowMeter (Engelen et al.) that produced
the ``cicids2017/improved_cns2022_rnd5000`` data our models train on; docs/features.md lists each feature,
its unit, and where it differs from the original CICFlowMeter or from later upstream fixes.
All work here is vectorised over the emitted rows.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd

from iotguard.core.schema import (
    ELF_COLUMN,
    EXTRA_FEATURES,
    FIRST_FLAGS_COLUMN,
    FLOW_FEATURES,
    HEAD_OPEN_COLUMN,
    HTTP_COLUMN,
    IDENTITY_COLUMNS,
    PARTIAL_COLUMN,
    PROBES_COLUMN,
    RFB_FAILURES_COLUMN,
)
from iotguard.flows import table as t

END_REASON_COLUMN = "end_reason"
APP_PROTO_COLUMN = "app_proto"
OPTIONAL_EXTRAS = (
    END_REASON_COLUMN,
    APP_PROTO_COLUMN,
    HTTP_COLUMN,
    FIRST_FLAGS_COLUMN,
    PROBES_COLUMN,
    HEAD_OPEN_COLUMN,
    ELF_COLUMN,
    RFB_FAILURES_COLUMN,
)
"""Columns after ``partial``: why the record was emitted, the application protocol its port suggests, the
most injection indicators one HTTP request of the flow carried (``flows.parse.http_indicators``; 0 for flows
without an HTTP request), the TCP flags of the connection's first packet seen (-1 for other protocols), and
the packets of the flow's source that only probing tools send (``flows.table._probe``), and the seconds its
HTTP request head has stayed unfinished, and the Linux executables its source received, and the RFB (VNC)
authentications its destination told it failed. Not model features: the detection engine reads the last six
directly."""

FLOW_COLUMNS = tuple(
    dict.fromkeys((*IDENTITY_COLUMNS, *FLOW_FEATURES, *EXTRA_FEATURES, PARTIAL_COLUMN, *OPTIONAL_EXTRAS))
)
"""Every column of an extracted flow table, in order (``dst_port`` and ``protocol`` are both identity
columns and features; they appear once, among the identity columns)."""

INT_FEATURES = frozenset(
    {
        "dst_port",
        "protocol",
        "flow_duration",
        "fwd_packets",
        "bwd_packets",
        "fwd_bytes",
        "bwd_bytes",
        "fwd_pkt_len_max",
        "fwd_pkt_len_min",
        "bwd_pkt_len_max",
        "bwd_pkt_len_min",
        "flow_iat_max",
        "flow_iat_min",
        "fwd_iat_total",
        "fwd_iat_max",
        "fwd_iat_min",
        "bwd_iat_total",
        "bwd_iat_max",
        "bwd_iat_min",
        "fwd_psh_flags",
        "bwd_psh_flags",
        "fwd_urg_flags",
        "bwd_urg_flags",
        "fwd_header_bytes",
        "bwd_header_bytes",
        "pkt_len_min",
        "pkt_len_max",
        "fin_flag_count",
        "syn_flag_count",
        "rst_flag_count",
        "psh_flag_count",
        "ack_flag_count",
        "urg_flag_count",
        "cwr_flag_count",
        "ece_flag_count",
        "fwd_bulk_bytes_avg",
        "fwd_bulk_packets_avg",
        "fwd_bulk_rate_avg",
        "bwd_bulk_bytes_avg",
        "bwd_bulk_packets_avg",
        "bwd_bulk_rate_avg",
        "subflow_fwd_packets",
        "subflow_fwd_bytes",
        "subflow_bwd_packets",
        "subflow_bwd_bytes",
        "fwd_init_win_bytes",
        "bwd_init_win_bytes",
        "fwd_act_data_packets",
        "fwd_seg_size_min",
        "active_max",
        "active_min",
        "idle_max",
        "idle_min",
        "fwd_rst_flags",
        "bwd_rst_flags",
        "icmp_code",
        "icmp_type",
        "tcp_flow_time",
    }
)
"""Features whose values are always whole numbers; they are int64 columns, the rest float64."""

# Well-known ports -> application protocol, in Suricata's ``app_proto`` vocabulary where it has one.
APP_PORTS = {
    1883: "mqtt",
    8883: "mqtt-tls",
    5683: "coap",
    5684: "coap-dtls",
    502: "modbus",
    20000: "dnp3",
    47808: "bacnet",
    102: "s7comm",
    44818: "enip",
    5672: "amqp",
    1900: "ssdp",
    5353: "mdns",
    53: "dns",
    67: "dhcp",
    68: "dhcp",
    123: "ntp",
    161: "snmp",
    162: "snmp",
    80: "http",
    8080: "http",
    443: "tls",
    8443: "tls",
    22: "ssh",
    23: "telnet",
    2323: "telnet",
    21: "ftp",
    25: "smtp",
    554: "rtsp",
    6667: "irc",
    445: "smb",
    3389: "rdp",
    5900: "rfb",
}
_APP_LOOKUP = np.full(65536, None, dtype=object)
for _port, _name in APP_PORTS.items():
    _APP_LOOKUP[_port] = _name


def _stat_cols(f: np.ndarray, base: int, n: np.ndarray, *, zero_if_lt: int = 1):
    """(sum, min, max, mean, std, variance) of a running statistic; zeros where fewer than ``zero_if_lt``."""
    ok = n >= zero_if_lt
    safe_n = np.where(n > 1, n - 1.0, 1.0)
    var = np.where(n > 1, f[:, base + t.ST_M2] / safe_n, 0.0)
    var = np.where(ok, var, 0.0)

    def z(col: np.ndarray) -> np.ndarray:
        return np.where(ok, col, 0.0)

    return (
        z(f[:, base + t.ST_SUM]),
        z(f[:, base + t.ST_MIN]),
        z(f[:, base + t.ST_MAX]),
        z(f[:, base + t.ST_MEAN]),
        np.sqrt(var),
        var,
    )


def _div(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    out = np.full(num.shape, fill, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _floordiv(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Java ``long / long`` for non-negative values, 0 where the denominator is 0."""
    num = num.astype(np.int64)
    den = den.astype(np.int64)
    out = np.zeros(num.shape, dtype=np.int64)
    np.floor_divide(num, den, out=out, where=den != 0)
    return out


_ADDR_CACHE: dict[tuple[int, int], str] = {}


def format_addresses(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """(hi, lo) 128-bit addresses -> strings (IPv4-mapped addresses print as dotted quads)."""
    if hi.shape[0] == 0:
        return np.empty(0, dtype=object)
    # distinct addresses by hashing (pandas.factorize), not sorting: (hi, lo) -> one code per pair
    lo_codes, lo_uniq = pd.factorize(lo)
    if not hi.any():
        inverse, uniq = lo_codes, np.stack([np.zeros_like(lo_uniq), lo_uniq], axis=1)
    else:
        hi_codes, hi_uniq = pd.factorize(hi)
        inverse, pair_uniq = pd.factorize(hi_codes.astype(np.int64) * len(lo_uniq) + lo_codes)
        uniq = np.stack([hi_uniq[pair_uniq // len(lo_uniq)], lo_uniq[pair_uniq % len(lo_uniq)]], axis=1)
    names = np.empty(uniq.shape[0], dtype=object)
    for k, (h, lw) in enumerate(uniq.tolist()):
        key = (h, lw)
        name = _ADDR_CACHE.get(key)
        if name is None:
            if h == 0 and (lw >> 32) == 0xFFFF:
                v = lw & 0xFFFFFFFF
                name = f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
            else:
                name = ipaddress.IPv6Address((h << 64) | lw).compressed
            if len(_ADDR_CACHE) >= 65536:  # bounded: a long capture with many hosts must not grow memory
                _ADDR_CACHE.clear()
            _ADDR_CACHE[key] = name
        names[k] = name
    return names[inverse.reshape(-1)]


def records(out_f: np.ndarray, out_k: np.ndarray, out_i: np.ndarray) -> pd.DataFrame:
    """Flow records (columns :data:`FLOW_COLUMNS`) from ``n`` emitted table rows."""
    f = out_f
    n = f.shape[0]
    if n == 0:
        return empty_records()
    fwd_n = f[:, t.FWD_N]
    bwd_n = f[:, t.BWD_N]
    tot_n = fwd_n + bwd_n
    ts_first = f[:, t.TS_FIRST]
    ts_last = f[:, t.TS_LAST]
    duration = ts_last - ts_first
    proto = out_i[:, t.O_PROTO]

    fwd_sum, fwd_min, fwd_max, fwd_mean, fwd_std, _ = _stat_cols(f, t.FWD_LEN, fwd_n)
    bwd_sum, bwd_min, bwd_max, bwd_mean, bwd_std, _ = _stat_cols(f, t.BWD_LEN, bwd_n)
    all_sum, all_min, all_max, all_mean, all_std, all_var = _stat_cols(f, t.ALL_LEN, tot_n)
    _, fiat_min, fiat_max, fiat_mean, fiat_std, _ = _stat_cols(f, t.FLOW_IAT, tot_n - 1.0)
    fwdi_sum, fwdi_min, fwdi_max, fwdi_mean, fwdi_std, _ = _stat_cols(f, t.FWD_IAT, fwd_n - 1.0)
    bwdi_sum, bwdi_min, bwdi_max, bwdi_mean, bwdi_std, _ = _stat_cols(f, t.BWD_IAT, bwd_n - 1.0)
    _, act_min, act_max, act_mean, act_std, _ = _stat_cols(f, t.ACTIVE, f[:, t.ACTIVE_N])
    _, idl_min, idl_max, idl_mean, idl_std, _ = _stat_cols(f, t.IDLE, f[:, t.IDLE_N])

    seconds = duration / 1_000_000.0
    fb, bb = t.FWD_BULK, t.BWD_BULK

    cols: dict[str, np.ndarray] = {
        "flow_id": out_i[:, t.O_FLOW_ID],
        "src_ip": format_addresses(out_k[:, 0], out_k[:, 1]),
        "src_port": out_i[:, t.O_SPORT],
        "dst_ip": format_addresses(out_k[:, 2], out_k[:, 3]),
        "dst_port": out_i[:, t.O_DPORT],
        "protocol": proto,
        "ts_first": ts_first / 1_000_000.0,
        "ts_last": ts_last / 1_000_000.0,
        # -- CICFlowMeter features ----------------------------------------------------------------------
        "flow_duration": duration,
        "fwd_packets": fwd_n,
        "bwd_packets": bwd_n,
        "fwd_bytes": fwd_sum,
        "bwd_bytes": bwd_sum,
        "fwd_pkt_len_max": fwd_max,
        "fwd_pkt_len_min": fwd_min,
        "fwd_pkt_len_mean": fwd_mean,
        "fwd_pkt_len_std": fwd_std,
        "bwd_pkt_len_max": bwd_max,
        "bwd_pkt_len_min": bwd_min,
        "bwd_pkt_len_mean": bwd_mean,
        "bwd_pkt_len_std": bwd_std,
        # CICFlowMeter divides by (duration / 1e6); a zero-length flow gets -1 as in later upstream releases.
        "flow_bytes_per_s": _div(fwd_sum + bwd_sum, seconds, -1.0),
        "flow_packets_per_s": _div(tot_n, seconds, -1.0),
        "flow_iat_mean": fiat_mean,
        "flow_iat_std": fiat_std,
        "flow_iat_max": fiat_max,
        "flow_iat_min": fiat_min,
        "fwd_iat_total": fwdi_sum,
        "fwd_iat_mean": fwdi_mean,
        "fwd_iat_std": fwdi_std,
        "fwd_iat_max": fwdi_max,
        "fwd_iat_min": fwdi_min,
        "bwd_iat_total": bwdi_sum,
        "bwd_iat_mean": bwdi_mean,
        "bwd_iat_std": bwdi_std,
        "bwd_iat_max": bwdi_max,
        "bwd_iat_min": bwdi_min,
        "fwd_psh_flags": f[:, t.FWD_PSH],
        "bwd_psh_flags": f[:, t.BWD_PSH],
        "fwd_urg_flags": f[:, t.FWD_URG],
        "bwd_urg_flags": f[:, t.BWD_URG],
        "fwd_header_bytes": f[:, t.FWD_HDR],
        "bwd_header_bytes": f[:, t.BWD_HDR],
        "fwd_packets_per_s": _div(fwd_n, seconds, 0.0),
        "bwd_packets_per_s": _div(bwd_n, seconds, 0.0),
        "pkt_len_min": all_min,
        "pkt_len_max": all_max,
        "pkt_len_mean": all_mean,
        "pkt_len_std": all_std,
        "pkt_len_var": all_var,
        "fin_flag_count": f[:, t.CNT_FIN],
        "syn_flag_count": f[:, t.CNT_SYN],
        "rst_flag_count": f[:, t.CNT_RST],
        "psh_flag_count": f[:, t.CNT_PSH],
        "ack_flag_count": f[:, t.CNT_ACK],
        "urg_flag_count": f[:, t.CNT_URG],
        "cwr_flag_count": f[:, t.CNT_CWR],
        "ece_flag_count": f[:, t.CNT_ECE],
        "down_up_ratio": _div(bwd_n, fwd_n, 0.0),
        "avg_packet_size": _div(all_sum, tot_n, 0.0),
        "fwd_segment_size_avg": _div(fwd_sum, fwd_n, 0.0),
        "bwd_segment_size_avg": _div(bwd_sum, bwd_n, 0.0),
        # Bulk averages are Java long divisions in the CNS2022 release (whole numbers).
        "fwd_bulk_bytes_avg": _floordiv(f[:, fb + t.BK_BYTES], f[:, fb + t.BK_STATES]),
        "fwd_bulk_packets_avg": _floordiv(f[:, fb + t.BK_PKTS], f[:, fb + t.BK_STATES]),
        "fwd_bulk_rate_avg": _bulk_rate(f[:, fb + t.BK_BYTES], f[:, fb + t.BK_DUR]),
        "bwd_bulk_bytes_avg": _floordiv(f[:, bb + t.BK_BYTES], f[:, bb + t.BK_STATES]),
        "bwd_bulk_packets_avg": _floordiv(f[:, bb + t.BK_PKTS], f[:, bb + t.BK_STATES]),
        "bwd_bulk_rate_avg": _bulk_rate(f[:, bb + t.BK_BYTES], f[:, bb + t.BK_DUR]),
        # The CNS2022 release counts one subflow per packet (its gap test is mis-parenthesised).
        "subflow_fwd_packets": _floordiv(fwd_n, tot_n),
        "subflow_fwd_bytes": _floordiv(fwd_sum, tot_n),
        "subflow_bwd_packets": _floordiv(bwd_n, tot_n),
        "subflow_bwd_bytes": _floordiv(bwd_sum, tot_n),
        "fwd_init_win_bytes": f[:, t.INIT_WIN_F],
        "bwd_init_win_bytes": f[:, t.INIT_WIN_B],
        "fwd_act_data_packets": f[:, t.ACT_DATA_F],
        "fwd_seg_size_min": f[:, t.MIN_SEG_F],
        "active_mean": act_mean,
        "active_std": act_std,
        "active_max": act_max,
        "active_min": act_min,
        "idle_mean": idl_mean,
        "idle_std": idl_std,
        "idle_max": idl_max,
        "idle_min": idl_min,
        # -- CNS2022 extras -----------------------------------------------------------------------------
        "fwd_rst_flags": f[:, t.FWD_RST],
        "bwd_rst_flags": f[:, t.BWD_RST],
        "icmp_code": f[:, t.ICMP_CODE],
        "icmp_type": f[:, t.ICMP_TYPE],
        "tcp_flow_time": np.where(proto == 6, f[:, t.CUM_TCP] + duration, 0.0),
    }
    kind = out_i[:, t.O_KIND]
    cols[PARTIAL_COLUMN] = kind == t.KIND_PARTIAL
    cols[END_REASON_COLUMN] = np.asarray(t.KIND_NAMES, dtype=object)[kind]
    cols[APP_PROTO_COLUMN] = _app_proto(out_i[:, t.O_SPORT], out_i[:, t.O_DPORT], proto)
    cols[HTTP_COLUMN] = f[:, t.HTTP_IND].astype(np.int64)
    cols[FIRST_FLAGS_COLUMN] = f[:, t.FIRST_FL].astype(np.int64)
    cols[PROBES_COLUMN] = f[:, t.PROBES].astype(np.int64)
    head_at = f[:, t.HEAD_AT]
    cols[HEAD_OPEN_COLUMN] = np.where(head_at > 0, (f[:, t.TS_LAST] - head_at) / 1e6, 0.0)
    cols[ELF_COLUMN] = f[:, t.EXE_N].astype(np.int64)
    cols[RFB_FAILURES_COLUMN] = f[:, t.RFB_N].astype(np.int64)
    for name in INT_FEATURES:
        cols[name] = np.asarray(cols[name]).astype(np.int64)
    return pd.DataFrame(cols, columns=list(FLOW_COLUMNS))


def _bulk_rate(size_total: np.ndarray, duration_us: np.ndarray) -> np.ndarray:
    # Java: (long) (sizeTotal / (duration / 1e6)), 0 when the duration is 0.
    rate = _div(size_total, duration_us / 1_000_000.0, 0.0)
    return np.trunc(rate).astype(np.int64)


def _app_proto(sport: np.ndarray, dport: np.ndarray, proto: np.ndarray) -> np.ndarray:
    ports_ok = (proto == 6) | (proto == 17)
    by_dst = _APP_LOOKUP[np.clip(dport, 0, 65535)]
    by_src = _APP_LOOKUP[np.clip(sport, 0, 65535)]
    out = np.where(pd.isna(by_dst), by_src, by_dst)
    return np.where(ports_ok, out, None)


def empty_records() -> pd.DataFrame:
    """A flow table with every column and no rows (dtypes as in non-empty tables)."""
    return _EMPTY.copy()


def _empty() -> pd.DataFrame:
    cols: dict[str, pd.Series] = {}
    for name in FLOW_COLUMNS:
        if name in ("src_ip", "dst_ip", END_REASON_COLUMN, APP_PROTO_COLUMN):
            dtype: object = "str"
        elif name == PARTIAL_COLUMN:
            dtype = bool
        elif (
            name
            in (
                "flow_id",
                "src_port",
                HTTP_COLUMN,
                FIRST_FLAGS_COLUMN,
                PROBES_COLUMN,
                ELF_COLUMN,
                RFB_FAILURES_COLUMN,
            )
            or name in INT_FEATURES
        ):
            dtype = np.int64
        else:
            dtype = np.float64
        cols[name] = pd.Series([], dtype=dtype)
    return pd.DataFrame(cols, columns=list(FLOW_COLUMNS))


_EMPTY = _empty()
