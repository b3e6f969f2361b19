"""The sensor's counters, gauges and latency histogram, shared by the REST API, the dashboard and /metrics.

Threads update plain counters (each named counter has one writer thread in practice; a lock makes the
multi-writer ones exact). Gauges are callables read when someone looks (queue depths, flow table size), so
nothing is computed unless asked. ``sample()`` appends a snapshot to a bounded history for the dashboard's
charts. :func:`prometheus_registry` exposes everything in Prometheus' text format.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

from iotguard import __version__

INFERENCE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Stats:
    """Everything the sensor counts. Counter names are free-form; the well-known ones are:

    ``packets``, ``bytes`` (captured), ``flows_final``, ``flows_early`` (records out of the flow meter),
    ``flows_scored``, ``telemetry_messages``, ``incidents``; ``drops[stage]`` counts what was lost and where
    (``kernel``, ``interface``, ``packet_queue``, ``flow_table``, ``telemetry_queue``, ``alert_queue``);
    ``skipped[reason]`` counts packets the parser could not use.
    """

    def __init__(self, history: int = 600) -> None:
        self.started = time.time()
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.alerts: Counter[tuple[int, str]] = Counter()  # (severity, source)
        self.actions: Counter[tuple[str, str]] = Counter()  # (action, result)
        self.gauges: dict[str, Callable[[], float]] = {}
        self.info: dict[str, str] = {"version": __version__}
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self.inference = Histogram(
            "iotguard_inference_seconds",
            "Time to score one batch of flows with the model.",
            buckets=INFERENCE_BUCKETS,
            registry=None,
        )
        self._inference_sum = 0.0
        self._inference_count = 0

    # -- updates ----------------------------------------------------------------------------------------
    def add(self, name: str, n: float = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def drop(self, stage: str, n: int = 1) -> None:
        with self._lock:
            self.drops[stage] += n

    def set_drops(self, stage: str, total: int) -> None:
        """For counters kept elsewhere as totals (the kernel's pcap_stats, the flow table's evictions)."""
        with self._lock:
            self.drops[stage] = max(self.drops[stage], int(total))

    def skip(self, reasons: dict[str, int]) -> None:
        with self._lock:
            self.skipped.update(reasons)

    def alert(self, severity: int, source: str, n: int = 1) -> None:
        with self._lock:
            self.alerts[(int(severity), source)] += n

    def action(self, action: str, result: str) -> None:
        with self._lock:
            self.actions[(action, result)] += 1

    def observe_inference(self, seconds: float, flows: int) -> None:
        self.inference.observe(seconds)
        with self._lock:
            self._inference_sum += seconds
            self._inference_count += 1
            self.counters["flows_scored"] += flows

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self.gauges[name] = read

    # -- reading ----------------------------------------------------------------------------------------
    def read_gauges(self) -> dict[str, float]:
        out = {}
        for name, read in list(self.gauges.items()):
            try:
                out[name] = float(read())
            except Exception:  # a gauge of a component that is shutting down
                continue
        return out

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            alerts_by_severity: Counter[int] = Counter()
            alerts_by_source: Counter[str] = Counter()
            for (sev, src), n in self.alerts.items():
                alerts_by_severity[sev] += n
                alerts_by_source[src] += n
            snap = {
                "time": time.time(),
                "uptime_s": time.time() - self.started,
                "counters": dict(self.counters),
                "drops": dict(self.drops),
                "skipped": dict(self.skipped),
                "alerts": {
                    "total": sum(alerts_by_severity.values()),
                    "by_severity": {str(k): v for k, v in sorted(alerts_by_severity.items())},
                    "by_source": dict(alerts_by_source),
                },
                "actions": {f"{a}:{r}": n for (a, r), n in sorted(self.actions.items())},
                "inference": {
                    "batches": self._inference_count,
                    "mean_ms": 1000 * self._inference_sum / self._inference_count
                    if self._inference_count
                    else None,
                },
            }
        snap["gauges"] = self.read_gauges()
        snap["rss_bytes"] = rss_bytes()
        snap["info"] = dict(self.info)
        return snap

    def sample(self) -> dict[str, Any]:
        """Record one point of the dashboard's throughput/drop/alert charts."""
        with self._lock:
            point = {
                "t": time.time(),
                "packets": self.counters["packets"],
                "bytes": self.counters["bytes"],
                "flows": self.counters["flows_final"] + self.counters["flows_early"],
                "alerts": sum(self.alerts.values()),
                "drops": sum(self.drops.values()),
            }
        point["rss"] = rss_bytes()
        self.history.append(point)
        return point


class _StatsCollector:
    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        s = self.stats
        with s._lock:
            counters = dict(s.counters)
            drops = dict(s.drops)
            skipped = dict(s.skipped)
            alerts = dict(s.alerts)
            actions = dict(s.actions)
        simple = {
            "packets": "Packets captured.",
            "bytes": "Bytes captured (on the wire).",
            "telemetry_messages": "MQTT telemetry messages received.",
            "incidents": "Incidents opened.",
        }
        for name, text in simple.items():
            m = CounterMetricFamily(f"iotguard_{name}", text)
            m.add_metric([], counters.get(name, 0))
            yield m
        flows = CounterMetricFamily("iotguard_flows", "Flow records out of the flow meter.", labels=["kind"])
        flows.add_metric(["final"], counters.get("flows_final", 0))
        flows.add_metric(["early"], counters.get("flows_early", 0))
        yield flows
        scored = CounterMetricFamily("iotguard_flows_scored", "Flow records scored by the model.")
        scored.add_metric([], counters.get("flows_scored", 0))
        yield scored
        d = CounterMetricFamily(
            "iotguard_drops", "Packets, flows or messages lost, by stage.", labels=["stage"]
        )
        for stage in sorted(set(drops) | {"kernel", "packet_queue", "flow_table"}):
            d.add_metric([stage], drops.get(stage, 0))
        yield d
        sk = CounterMetricFamily(
            "iotguard_packets_skipped", "Packets the parser could not use.", labels=["reason"]
        )
        for reason, n in sorted(skipped.items()):
            sk.add_metric([reason], n)
        yield sk
        a = CounterMetricFamily("iotguard_alerts", "Alerts raised.", labels=["severity", "source"])
        for (sev, source), n in sorted(alerts.items()):
            a.add_metric([str(sev), source], n)
        yield a
        act = CounterMetricFamily("iotguard_actions", "Response actions.", labels=["action", "result"])
        for (action, result), n in sorted(actions.items()):
            act.add_metric([action, result], n)
        yield act
        g = GaugeMetricFamily(
            "iotguard_gauge", "Current levels (queues, flow table, devices).", labels=["name"]
        )
        for name, value in sorted(s.read_gauges().items()):
            g.add_metric([name], value)
        yield g
        up = GaugeMetricFamily("iotguard_start_time_seconds", "When the sensor started (epoch seconds).")
        up.add_metric([], s.started)
        yield up
        info = GaugeMetricFamily("iotguard_info", "Sensor version and model.", labels=sorted(s.info))
        info.add_metric([s.info[k] for k in sorted(s.info)], 1)
        yield info


def prometheus_registry(stats: Stats) -> CollectorRegistry:
    """A registry holding the sensor's metrics, the inference histogram and the process metrics (RSS, CPU)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_StatsCollector(stats))
    registry.register(stats.inference)
    ProcessCollector(registry=registry)
    return registry
