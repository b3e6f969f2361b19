"""The flow-record contract: one canonical naming, shared by the packet extractor and the dataset loaders.

A flow table is a pandas DataFrame with

* identity columns (:data:`IDENTITY_COLUMNS`): who talked to whom and when. Timestamps are float seconds since
  the Unix epoch (UTC). ``dst_port`` and ``protocol`` are also features.
* feature columns: :data:`FLOW_FEATURES` (CICFlowMeter's 76 statistics plus destination port and protocol,
  in the order of the CICIDS2017 CSVs) and :data:`EXTRA_FEATURES` (columns of the corrected CNS2022
  extractor). Durations, inter-arrival times and active/idle times are in microseconds, as in CICFlowMeter.
* optional label columns (:data:`LABEL_COLUMNS`): ``label`` (fine label), ``category`` (attack family, one
  of :data:`FAMILIES` or a dataset's own families), ``is_attack`` (0 or 1).

Because both sides use these names, a model trained on CICIDS2017 CSVs scores flows extracted from a pcap
without any renaming.
"""

from __future__ import annotations

from typing import Final

# -- identity -------------------------------------------------------------------------------------------
IDENTITY_COLUMNS: Final = (
    "flow_id",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "protocol",
    "ts_first",
    "ts_last",
)
PARTIAL_COLUMN: Final = "partial"
"""Boolean column on early (provisional) flow records: True until the flow has ended."""

LABEL_COLUMNS: Final = ("label", "category", "is_attack")

HTTP_COLUMN: Final = "http_indicators"
"""Optional column of extracted flow tables: the most injection indicators one HTTP request of the flow
carried (``iotguard.flows.parse.http_indicators``). Not a model feature; the detection engine reads it."""

FIRST_FLAGS_COLUMN: Final = "tcp_first_flags"
"""Optional column of extracted flow tables: the TCP flags byte of the first packet of the flow's connection
that the meter saw, sent by the flow's source (-1 for other protocols). Tells a flow opened by its source (a
SYN) from one whose first packet was an answer (a SYN-ACK or a RST: the peer's opening packet was not seen).
Not a model feature; attribution reads it (``iotguard.detect.attribution``)."""

PROBES_COLUMN: Final = "probe_packets"
"""Optional column of extracted flow tables: packets the flow's source sent of a shape that no ordinary IP stack
sends, only probing tools (ICMP requests with undefined codes or of deprecated types, TCP segments without ACK
that are neither SYN nor RST, SYN with FIN or RST; ``iotguard.flows.table._probe``). Not a model feature; the
detection engine reads it."""

HEAD_OPEN_COLUMN: Final = "http_head_open"
"""Optional column of extracted flow tables: seconds the flow source's HTTP request head had stayed unfinished
(request line sent, the blank line ending its headers not yet, no answer from the server) at the record's last
packet; 0 when none is open. Not a model feature; the detection engine's slow-HTTP check reads it."""

ELF_COLUMN: Final = "elf_downloads"
"""Optional column of extracted flow tables: Linux executables (ELF headers) the flow's source received from its
destination over TCP, at the start of the destination's stream or of an HTTP response body
(``iotguard.flows.parse._executable``): a device fetching a bot binary. Not a model feature; the detection
engine's download check reads it."""

RFB_FAILURES_COLUMN: Final = "rfb_auth_failures"
"""Optional column of extracted flow tables: RFB (VNC) authentications that the flow's destination, a VNC server
whose handshake the meter saw from its start, told the flow's source (the client) failed: a SecurityResult
"failed" right after the VNC-authentication challenge (``iotguard.flows.table._rfb_step``); 0 or 1 per
connection. Not a model feature; the detection engine's auth check reads it."""

# -- features: (canonical name, CICIDS2017 original CSV name, CNS2022 corrected CSV name) ----------------
_FEATURE_TABLE: Final = (
    ("dst_port", "Destination Port", "Dst Port"),
    ("protocol", "Protocol", "Protocol"),
    ("flow_duration", "Flow Duration", "Flow Duration"),
    ("fwd_packets", "Total Fwd Packets", "Total Fwd Packet"),
    ("bwd_packets", "Total Backward Packets", "Total Bwd packets"),
    ("fwd_bytes", "Total Length of Fwd Packets", "Total Length of Fwd Packet"),
    ("bwd_bytes", "Total Length of Bwd Packets", "Total Length of Bwd Packet"),
    ("fwd_pkt_len_max", "Fwd Packet Length Max", "Fwd Packet Length Max"),
    ("fwd_pkt_len_min", "Fwd Packet Length Min", "Fwd Packet Length Min"),
    ("fwd_pkt_len_mean", "Fwd Packet Length Mean", "Fwd Packet Length Mean"),
    ("fwd_pkt_len_std", "Fwd Packet Length Std", "Fwd Packet Length Std"),
    ("bwd_pkt_len_max", "Bwd Packet Length Max", "Bwd Packet Length Max"),
    ("bwd_pkt_len_min", "Bwd Packet Length Min", "Bwd Packet Length Min"),
    ("bwd_pkt_len_mean", "Bwd Packet Length Mean", "Bwd Packet Length Mean"),
    ("bwd_pkt_len_std", "Bwd Packet Length Std", "Bwd Packet Length Std"),
    ("flow_bytes_per_s", "Flow Bytes/s", "Flow Bytes/s"),
    ("flow_packets_per_s", "Flow Packets/s", "Flow Packets/s"),
    ("flow_iat_mean", "Flow IAT Mean", "Flow IAT Mean"),
    ("flow_iat_std", "Flow IAT Std", "Flow IAT Std"),
    ("flow_iat_max", "Flow IAT Max", "Flow IAT Max"),
    ("flow_iat_min", "Flow IAT Min", "Flow IAT Min"),
    ("fwd_iat_total", "Fwd IAT Total", "Fwd IAT Total"),
    ("fwd_iat_mean", "Fwd IAT Mean", "Fwd IAT Mean"),
    ("fwd_iat_std", "Fwd IAT Std", "Fwd IAT Std"),
    ("fwd_iat_max", "Fwd IAT Max", "Fwd IAT Max"),
    ("fwd_iat_min", "Fwd IAT Min", "Fwd IAT Min"),
    ("bwd_iat_total", "Bwd IAT Total", "Bwd IAT Total"),
    ("bwd_iat_mean", "Bwd IAT Mean", "Bwd IAT Mean"),
    ("bwd_iat_std", "Bwd IAT Std", "Bwd IAT Std"),
    ("bwd_iat_max", "Bwd IAT Max", "Bwd IAT Max"),
    ("bwd_iat_min", "Bwd IAT Min", "Bwd IAT Min"),
    ("fwd_psh_flags", "Fwd PSH Flags", "Fwd PSH Flags"),
    ("bwd_psh_flags", "Bwd PSH Flags", "Bwd PSH Flags"),
    ("fwd_urg_flags", "Fwd URG Flags", "Fwd URG Flags"),
    ("bwd_urg_flags", "Bwd URG Flags", "Bwd URG Flags"),
    ("fwd_header_bytes", "Fwd Header Length", "Fwd Header Length"),
    ("bwd_header_bytes", "Bwd Header Length", "Bwd Header Length"),
    ("fwd_packets_per_s", "Fwd Packets/s", "Fwd Packets/s"),
    ("bwd_packets_per_s", "Bwd Packets/s", "Bwd Packets/s"),
    ("pkt_len_min", "Min Packet Length", "Packet Length Min"),
    ("pkt_len_max", "Max Packet Length", "Packet Length Max"),
    ("pkt_len_mean", "Packet Length Mean", "Packet Length Mean"),
    ("pkt_len_std", "Packet Length Std", "Packet Length Std"),
    ("pkt_len_var", "Packet Length Variance", "Packet Length Variance"),
    ("fin_flag_count", "FIN Flag Count", "FIN Flag Count"),
    ("syn_flag_count", "SYN Flag Count", "SYN Flag Count"),
    ("rst_flag_count", "RST Flag Count", "RST Flag Count"),
    ("psh_flag_count", "PSH Flag Count", "PSH Flag Count"),
    ("ack_flag_count", "ACK Flag Count", "ACK Flag Count"),
    ("urg_flag_count", "URG Flag Count", "URG Flag Count"),
    ("cwr_flag_count", "CWE Flag Count", "CWR Flag Count"),
    ("ece_flag_count", "ECE Flag Count", "ECE Flag Count"),
    ("down_up_ratio", "Down/Up Ratio", "Down/Up Ratio"),
    ("avg_packet_size", "Average Packet Size", "Average Packet Size"),
    ("fwd_segment_size_avg", "Avg Fwd Segment Size", "Fwd Segment Size Avg"),
    ("bwd_segment_size_avg", "Avg Bwd Segment Size", "Bwd Segment Size Avg"),
    ("fwd_bulk_bytes_avg", "Fwd Avg Bytes/Bulk", "Fwd Bytes/Bulk Avg"),
    ("fwd_bulk_packets_avg", "Fwd Avg Packets/Bulk", "Fwd Packet/Bulk Avg"),
    ("fwd_bulk_rate_avg", "Fwd Avg Bulk Rate", "Fwd Bulk Rate Avg"),
    ("bwd_bulk_bytes_avg", "Bwd Avg Bytes/Bulk", "Bwd Bytes/Bulk Avg"),
    ("bwd_bulk_packets_avg", "Bwd Avg Packets/Bulk", "Bwd Packet/Bulk Avg"),
    ("bwd_bulk_rate_avg", "Bwd Avg Bulk Rate", "Bwd Bulk Rate Avg"),
    ("subflow_fwd_packets", "Subflow Fwd Packets", "Subflow Fwd Packets"),
    ("subflow_fwd_bytes", "Subflow Fwd Bytes", "Subflow Fwd Bytes"),
    ("subflow_bwd_packets", "Subflow Bwd Packets", "Subflow Bwd Packets"),
    ("subflow_bwd_bytes", "Subflow Bwd Bytes", "Subflow Bwd Bytes"),
    ("fwd_init_win_bytes", "Init_Win_bytes_forward", "FWD Init Win Bytes"),
    ("bwd_init_win_bytes", "Init_Win_bytes_backward", "Bwd Init Win Bytes"),
    ("fwd_act_data_packets", "act_data_pkt_fwd", "Fwd Act Data Pkts"),
    ("fwd_seg_size_min", "min_seg_size_forward", "Fwd Seg Size Min"),
    ("active_mean", "Active Mean", "Active Mean"),
    ("active_std", "Active Std", "Active Std"),
    ("active_max", "Active Max", "Active Max"),
    ("active_min", "Active Min", "Active Min"),
    ("idle_mean", "Idle Mean", "Idle Mean"),
    ("idle_std", "Idle Std", "Idle Std"),
    ("idle_max", "Idle Max", "Idle Max"),
    ("idle_min", "Idle Min", "Idle Min"),
)

FLOW_FEATURES: Final[tuple[str, ...]] = tuple(row[0] for row in _FEATURE_TABLE)
"""Destination port, protocol and CICFlowMeter's 76 statistics, in CICIDS2017 column order."""

EXTRA_FEATURES: Final = ("fwd_rst_flags", "bwd_rst_flags", "icmp_code", "icmp_type", "tcp_flow_time")
"""Columns the corrected (CNS2022) extractor adds; iotguard's extractor computes them too."""

CIC_ORIGINAL_NAMES: Final[dict[str, str]] = {row[1]: row[0] for row in _FEATURE_TABLE}
"""Original CICIDS2017 CSV header (leading spaces stripped) -> canonical name."""

CIC_CNS2022_NAMES: Final[dict[str, str]] = {row[2]: row[0] for row in _FEATURE_TABLE} | {
    "Fwd RST Flags": "fwd_rst_flags",
    "Bwd RST Flags": "bwd_rst_flags",
    "ICMP Code": "icmp_code",
    "ICMP Type": "icmp_type",
    "Total TCP Flow Time": "tcp_flow_time",
}
"""Corrected CNS2022 CICIDS2017 CSV header -> canonical name."""

# -- labels ---------------------------------------------------------------------------------------------
BENIGN: Final = "Benign"
"""The ``category`` (and lab ``label``) of benign traffic in every dataset."""

FAMILIES: Final = (
    BENIGN,
    "DoS",
    "DDoS",
    "PortScan",
    "BruteForce",
    "WebAttack",
    "Botnet",
    "Infiltration",
    "Heartbleed",
    "MQTTAbuse",
    "Exfiltration",
    "Spoofing",
)
"""The shared attack-family vocabulary of packet-based data (CICIDS2017, IoT-23, the lab).

NSL-KDD and UNSW-NB15 keep their own published families (DoS/Probe/R2L/U2R; Generic, Exploits, ...)."""
