"""Packets to flows: a bounded bidirectional flow table computing CICFlowMeter-compatible features.

Streaming: ``FlowMeter(config).feed(batch) / expire(now) / flush()``. Any source: ``iter_flows(path or
"iface:NAME")``. One table: ``read_flows(path)``. See docs/flows.md and docs/features.md.
"""

from iotguard.flows.api import FlowStream, iter_flows, read_flow_table, read_flows
from iotguard.flows.features import FLOW_COLUMNS, empty_records
from iotguard.flows.labels import label_flows
from iotguard.flows.meter import FlowConfig, FlowMeter, FlowStats
from iotguard.flows.writers import FlowWriter

__all__ = [
    "FLOW_COLUMNS",
    "FlowConfig",
    "FlowMeter",
    "FlowStats",
    "FlowStream",
    "FlowWriter",
    "empty_records",
    "iter_flows",
    "label_flows",
    "read_flow_table",
    "read_flows",
]
