"""The detection engine: flow batches in, stored alerts and incidents out, in order, for a file or a stream.

    flows -> Detector verdicts -> attribution -> suppression -> k-of-n confirmation -> severity
          -> explanation -> evidence gate -> incident folding -> Store (alerts + incidents, one transaction)
          -> EVE file -> sinks

Besides the models, the engine reads two things the flow meter found in the packets. The injection indicators
of a flow's HTTP requests (``http_indicators``: shell and SQL metacharacters and ``../`` in a request target,
URI header or body, ``flows.parse.http_indicators``): a flow whose request carried at least ``http_indicators``
of them is a ``WebAttack`` whatever the models say (they see only sizes and timing, never a URL); its alert
names the count as its explanation and ``http-inspection`` as its model. And probe packets (``probe_packets``:
packets of a shape only probing tools send, ``flows.table._probe``): a flow whose source sent at least
``probe_packets`` of them is a ``PortScan`` (reconnaissance), model ``probe-check``. Both are matches of a
fixed rule, their own evidence: the evidence gate does not hold them. And a third, weaker look: a flow that no
model flagged whose client has left an HTTP request head unfinished for ``slow_http_seconds``
(``http_head_open``) is a ``DoS`` candidate, model ``slow-http-check``; one such connection is a slow client,
so these alerts wait for the DoS rule's evidence (many connections of one attacker) like any other.
And Linux executables a flow's source downloaded (``elf_downloads``: an ELF header at the start of an HTTP
response body or of the server's TCP stream, ``flows.parse._executable``): a flow with at least
``elf_downloads`` of them is a ``Botnet`` alert (malware delivered to the device: the flow's source, as for every
botnet alert), model ``download-check``, a fixed rule's match like the first two. And failed VNC logins
(``rfb_auth_failures``: a VNC server's SecurityResult "failed" after its password challenge,
``flows.table._rfb_step``): a flow with at least ``rfb_auth_failures`` of them is a ``BruteForce`` alert
against the client (the flow's source), model ``auth-check``, a fixed rule's match too (Emerging Threats'
"ET INFO VNC Authentication Failure", sid 2002920, alerts on each one; a user's typo raises it as well).

A verdict of an external-only family (``Botnet``: a C&C server is on the internet) for a site device's channel
to a server in the site's networks is re-labelled ``Anomaly`` once attribution has named both ends, and needs
that family's evidence.

Attribution names the attacker (the flow's source, except for reply-only flows such as ICMP errors, see
``attribution``); the evidence gate holds an attacker's alerts until they show a plausible pattern for their
family (see ``evidence``).

The same object serves ``iotguard detect CAPTURE`` and the live sensor: call :meth:`DetectionEngine.process`
with each batch of flow records (early/partial records included) as it comes, :meth:`close` at the end.
Sinks (the response engine's ``handle``) are called after the alert is stored, so a crash in a sink never
loses the alert.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from iotguard.core.config import (
    DEFAULT_ELF_DOWNLOADS,
    DEFAULT_HTTP_INDICATORS,
    DEFAULT_PROBE_PACKETS,
    DEFAULT_RFB_AUTH_FAILURES,
    DEFAULT_SLOW_HTTP_SECONDS,
    EXTERNAL_FAMILIES,
    SITE_NETWORKS,
    NetworkStr,
)
from iotguard.core.networks import NetworkSet
from iotguard.core.records import Alert, Incident, proto_name
from iotguard.core.schema import (
    ELF_COLUMN,
    FAMILIES,
    HEAD_OPEN_COLUMN,
    HTTP_COLUMN,
    PARTIAL_COLUMN,
    PROBES_COLUMN,
    RFB_FAILURES_COLUMN,
)
from iotguard.core.store import Store
from iotguard.detect.assets import Assets
from iotguard.detect.attribution import COLUMNS as ATTRIBUTION_COLUMNS
from iotguard.detect.attribution import attribute, numeric
from iotguard.detect.detector import ANOMALY, Detector
from iotguard.detect.eve import EveWriter
from iotguard.detect.evidence import EvidenceConfig, EvidenceGate, Observation
from iotguard.detect.filters import ConfirmConfig, Confirmer, Suppressor, SuppressRule
from iotguard.detect.incidents import FoldConfig, IncidentFolder
from iotguard.detect.severity import SeverityConfig, SeverityModel

log = logging.getLogger(__name__)

SIGNATURE_BASE = 9_100_000
"""iotguard's signature ids: 9100000 + the family's index in FAMILIES; 9100099 for Anomaly; 9100098 other."""
ALERTED_KEPT = 200_000
"""Most recent alerts remembered (flow, attacker, family), so a flow's later record does not alert again."""


WEB_ATTACK = "WebAttack"
INSPECTION = 3
"""``Verdicts.component`` of a verdict made by the HTTP inspection (1 classifier, 2 anomaly model)."""
INSPECTION_MODEL = "http-inspection"
PROBE = 4
"""``Verdicts.component`` of a verdict made by the probe check."""
PROBE_MODEL = "probe-check"
PROBE_FAMILY = "PortScan"
"""OS fingerprinting and stealth scans are reconnaissance, which ``FAMILIES`` calls PortScan."""
SLOW_HTTP = 5
"""``Verdicts.component`` of a verdict made by the slow-HTTP check."""
SLOW_HTTP_MODEL = "slow-http-check"
SLOW_HTTP_FAMILY = "DoS"
DOWNLOAD = 6
"""``Verdicts.component`` of a verdict made by the download check."""
DOWNLOAD_MODEL = "download-check"
DOWNLOAD_FAMILY = "Botnet"
"""A device fetching a Linux executable is being recruited (Mirai's loaders and droppers fetch the bot with
wget); the device is the flow's source, as in every botnet alert, so a policy can quarantine ``src``."""
AUTH = 7
"""``Verdicts.component`` of a verdict made by the auth check."""
AUTH_MODEL = "auth-check"
AUTH_FAMILY = "BruteForce"


class FixedCheck(NamedTuple):
    """A fixed-rule check: a match on what the packets say, not a model's score."""

    component: int
    """``Verdicts.component`` of its verdicts."""
    model: str
    """The ``model`` of its alerts."""
    column: str
    """The flow column it counts; the count is its alerts' score and explanation."""
    matched: str
    """What one alert matched, in the alert's signature: ``IOTGUARD <family> (<matched>)``."""
    looks_for: str
    """What the check looks for, for reports (the demo's table of checks)."""


FIXED_CHECKS: tuple[FixedCheck, ...] = (
    FixedCheck(AUTH, AUTH_MODEL, RFB_FAILURES_COLUMN, "a failed VNC login",
               "failed VNC logins (RFB SecurityResult after the password challenge)"),
    FixedCheck(INSPECTION, INSPECTION_MODEL, HTTP_COLUMN, "injection in an HTTP request",
               "shell and SQL injection in HTTP requests"),
    FixedCheck(DOWNLOAD, DOWNLOAD_MODEL, ELF_COLUMN, "a Linux executable downloaded",
               "Linux executables a device downloads"),
    FixedCheck(PROBE, PROBE_MODEL, PROBES_COLUMN, "a packet only probing tools send",
               "packets only probing tools send"),
    FixedCheck(SLOW_HTTP, SLOW_HTTP_MODEL, HEAD_OPEN_COLUMN, "an HTTP request left unfinished",
               "HTTP request heads left unfinished"),
)  # fmt: skip
"""Every fixed-rule check, read by the engine (its alerts' model, explanation and signature) and by the
reports that list the checks (``iotguard demo``), so a check added here cannot be missing from either."""
_CHECKS = {check.component: check for check in FIXED_CHECKS}


def signature_id(family: str) -> int:
    if family == ANOMALY:
        return SIGNATURE_BASE + 99
    try:
        return SIGNATURE_BASE + FAMILIES.index(family)
    except ValueError:
        return SIGNATURE_BASE + 98


class DetectionConfig(BaseModel):
    """Per-deployment detection settings (the ``detection:`` section of a config file)."""

    model_config = ConfigDict(extra="forbid")
    target_fpr: float | None = Field(None, ge=0, lt=1)
    """Move every model's threshold to this false-positive rate on its benign validation flows."""
    classifier_threshold: float | None = None
    """Explicit classifier threshold (overrides target_fpr for the classifier)."""
    anomaly_threshold: float | None = None
    min_confidence: float = Field(0.0, ge=0, le=1)
    """Alerts below this calibrated confidence are dropped."""
    explain_top: int = Field(5, ge=0, le=50)
    """Features named per alert (0: no explanations)."""
    fold: FoldConfig = FoldConfig()
    confirm: ConfirmConfig = ConfirmConfig()
    suppress: list[SuppressRule] = []
    severity: SeverityConfig = SeverityConfig()
    evidence: EvidenceConfig = EvidenceConfig()
    """Per-family evidence an attacker's alerts must show before they raise an incident."""
    http_indicators: int | None = Field(DEFAULT_HTTP_INDICATORS, ge=1)
    """A flow whose HTTP request carried at least this many injection indicators alerts as WebAttack (None:
    off)."""
    probe_packets: int | None = Field(DEFAULT_PROBE_PACKETS, ge=1)
    """A flow whose source sent at least this many probe packets alerts as PortScan (None: off)."""
    slow_http_seconds: float | None = Field(DEFAULT_SLOW_HTTP_SECONDS, gt=0)
    """A flow no model flagged whose client left an HTTP request head unfinished this long alerts as DoS,
    subject to the DoS evidence rule (None: off)."""
    elf_downloads: int | None = Field(DEFAULT_ELF_DOWNLOADS, ge=1)
    """A flow whose source received at least this many Linux executables (ELF) alerts as Botnet (None: off)."""
    rfb_auth_failures: int | None = Field(DEFAULT_RFB_AUTH_FAILURES, ge=1)
    """A flow whose VNC server told its source (the client) at least this many times that authentication failed
    alerts as BruteForce, the client the attacker (None: off)."""
    site_networks: list[NetworkStr] = Field(default_factory=lambda: list(SITE_NETWORKS))
    """The site's own networks (the sensor config's ``inventory.networks``)."""
    external_families: list[str] = Field(default_factory=lambda: list(EXTERNAL_FAMILIES))
    """Families whose server must be outside ``site_networks``; a verdict of one of them against a server
    inside becomes an ``Anomaly`` alert (its evidence rule applies). Empty: off."""


def detection_config(config: Any) -> DetectionConfig:
    """The detection settings of a sensor configuration (``iotguard.core.config.Config``: its ``detect`` and
    ``model`` sections), so ``iotguard detect --config`` and ``iotguard run`` behave the same."""
    d = config.detect
    return DetectionConfig(
        classifier_threshold=config.model.threshold,
        explain_top=5 if d.explain else 0,
        fold=FoldConfig(window=d.fold_window, fanin=d.fold_fanin),
        confirm=ConfirmConfig(k=d.confirm_k, n=d.confirm_n),
        suppress=[SuppressRule(**s.model_dump()) for s in d.suppress],
        severity=SeverityConfig(family=dict(d.severity), low_confidence=d.low_confidence),
        evidence=EvidenceConfig(enabled=d.evidence),
        site_networks=list(config.inventory.networks),
        external_families=list(d.external_families),
        http_indicators=d.http_indicators,
        probe_packets=d.probe_packets,
        slow_http_seconds=d.slow_http_seconds,
        elf_downloads=d.elf_downloads,
        rfb_auth_failures=d.rfb_auth_failures,
    )


@dataclass
class DetectionStats:
    flows: int = 0
    partial_flows: int = 0
    flagged: int = 0
    """Flows at or above a threshold."""
    low_confidence: int = 0
    suppressed: int = 0
    unconfirmed: int = 0
    duplicate: int = 0
    """Flagged again after the flow already alerted (an early record followed by later ones)."""
    insufficient_evidence: int = 0
    """Alerts held by the evidence gate and dropped: their attacker never showed enough for the family."""
    held: int = 0
    """Alerts the evidence gate holds right now (they raise an incident once the evidence is enough)."""
    reply_flows: int = 0
    """Alerts on reply-only flows (ICMP errors, SYN-ACKs ...), attributed to the flow's destination."""
    self_flows: int = 0
    """Flagged two-way flows between an address and itself: no attacker to name, dropped (``attribution``)."""
    unattributed: int = 0
    """Flagged flows that name no attacker, dropped (``attribution``): TCP flows whose first packet seen was a
    RST (an answer or a forgery) and flows from an unspecified, multicast or broadcast address."""
    inside_site: int = 0
    """Flagged flows of an external-only family (Botnet) whose server is in the site's networks, re-labelled
    ``Anomaly``."""
    alerts: int = 0
    incidents: int = 0
    explain_seconds: float = 0.0
    score_seconds: float = 0.0
    by_family: dict[str, int] = field(default_factory=dict)

    @property
    def fold_ratio(self) -> float:
        """Alerts per incident (alert volume before folding / after)."""
        return self.alerts / self.incidents if self.incidents else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"fold_ratio": self.fold_ratio}


@dataclass
class Event:
    """One stored alert, the incident it folded into, and whether that incident opened with it."""

    alert: Alert
    incident: Incident
    opened: bool


Sink = Callable[[Alert, Incident], Any]


class DetectionEngine:
    def __init__(
        self,
        detector: Detector,
        *,
        config: DetectionConfig | None = None,
        assets: Assets | None = None,
        store: Store | None = None,
        eve: EveWriter | None = None,
        sinks: Iterable[Sink] = (),
    ) -> None:
        self.config = config = config or DetectionConfig()
        self.use_detector(detector)
        self.assets = assets or Assets()
        self.severity = SeverityModel(config.severity, self.assets)
        self.suppressor = Suppressor(config.suppress)
        self.confirmer = Confirmer(config.confirm)
        self.folder = IncidentFolder(config.fold)
        self._site = NetworkSet(config.site_networks, cache=ALERTED_KEPT)
        self.gate = EvidenceGate(
            config.evidence, window=config.fold.window, fanin=config.fold.fanin, scatter=config.fold.scatter
        )
        self.store = store
        self.eve = eve
        self.sinks = list(sinks)
        self.stats = DetectionStats()
        # flow, attacker and family already alerted on (the early and final records of one flow are one
        # alert). Plain strings in a plain dict: the garbage collector does not track it, however many.
        self._alerted: dict[str, None] = {}
        self._ids = itertools.count(1)  # alert and incident ids when there is no store
        self._incident_ids = itertools.count(1)
        self._incidents: dict[int, Incident] = {}

    def use_detector(self, detector: Detector, *, fresh_evidence: bool = False) -> None:
        """Score with ``detector`` from the next batch on (the sensor switches to the site detector its
        learning period fitted), its thresholds moved as this engine's configuration says.
        ``fresh_evidence``: forget the evidence gate's state (held alerts dropped and counted as insufficient
        evidence, attackers no longer named): what the old detector saw does not count for the new one."""
        if fresh_evidence:
            self.gate.close()
            self._gate_stats()
        config = self.config
        if config.target_fpr is not None:
            detector.set_target_fpr(config.target_fpr)
        detector.set_thresholds(
            classifier=config.classifier_threshold if detector.classifier is not None else None,
            anomaly=config.anomaly_threshold if detector.anomaly is not None else None,
        )
        self.detector = detector

    def process(self, flows: pd.DataFrame, *, where: str | None = None) -> list[Event]:
        """Score one batch of flow records; store, write and hand on its alerts. Returns them in order."""
        n = len(flows)
        if n == 0:
            return []
        self.stats.flows += n
        partial = (
            flows[PARTIAL_COLUMN].to_numpy(dtype=bool)
            if PARTIAL_COLUMN in flows.columns
            else np.zeros(n, dtype=bool)
        )
        self.stats.partial_flows += int(partial.sum())
        t0 = time.perf_counter()
        x = self.detector.matrix(flows, where=where)
        verdicts = self.detector.score_array(x)
        self._inspect(flows, verdicts)
        self.stats.score_seconds += time.perf_counter() - t0
        flagged = verdicts.is_alert
        self.stats.flagged += int(flagged.sum())
        # address strings and numeric columns read once, for attribution and the evidence's volumes
        src = flows["src_ip"].astype(str).to_numpy(dtype=object)
        dst = flows["dst_ip"].astype(str).to_numpy(dtype=object)
        num = numeric(flows, ATTRIBUTION_COLUMNS + VOLUME_COLUMNS)
        who = attribute(src, dst, num)
        attacker, victim, swapped = who.attacker, who.victim, who.swapped
        nobody = flagged & who.nobody
        if nobody.any():
            self.stats.self_flows += int((nobody & who.self_flow).sum())
            self.stats.unattributed += int((nobody & ~who.self_flow).sum())
            flagged = flagged & ~nobody
        inside = self._external_inside(verdicts, flagged, attacker, victim)
        if self.confirmer.enabled:
            confirmed = self.confirmer(attacker.tolist(), flagged)
            self.stats.unconfirmed += int(flagged.sum() - confirmed.sum())
            flagged = confirmed
        rows = np.flatnonzero(flagged)
        if len(rows) == 0:
            self._expire()
            return []
        conf = verdicts.confidence
        keep = []
        again: list[int] = []  # flows that alerted before: their evidence still counts (EvidenceGate.observe)
        ts_last = flows["ts_last"].to_numpy(dtype=np.float64)
        flow_ids = flows["flow_id"].to_numpy() if "flow_id" in flows.columns else None
        for i in rows.tolist():
            fam = str(verdicts.family[i])
            if not conf[i] >= self.config.min_confidence:
                self.stats.low_confidence += 1
                continue
            if self.suppressor(attacker[i], victim[i], fam, ts_last[i]):
                self.stats.suppressed += 1
                continue
            if flow_ids is not None:
                key = f"{flow_ids[i]} {attacker[i]} {fam}"
                if key in self._alerted:
                    self.stats.duplicate += 1
                    again.append(i)
                    continue
                self._alerted[key] = None
                if len(self._alerted) > ALERTED_KEPT:  # forget the older half at once: O(1) amortised
                    self._alerted = dict.fromkeys(itertools.islice(self._alerted, ALERTED_KEPT // 2, None))
            keep.append(i)
        if not keep and not again:
            self._expire()
            return []
        keep_arr = np.asarray(keep, dtype=np.intp)
        t0 = time.perf_counter()
        explanations = (
            self.detector.explain(
                x, verdicts, keep_arr, top=self.config.explain_top, fallback=_median_of_quiet(x, verdicts)
            )
            if self.config.explain_top
            else [[] for _ in keep]
        )
        for j, i in enumerate(keep):  # a rule's score is its count
            check = _CHECKS.get(int(verdicts.component[i]))
            if check is not None:
                explanations[j] = [(check.column, float(verdicts.score[i]))]
        self.stats.explain_seconds += time.perf_counter() - t0
        # Columns as arrays once per batch: a row lookup (flows.iloc[i]) per alert cost ~0.5 ms each.
        cols = {
            c: flows[c].to_numpy(dtype=object)
            for c in ("ts_last", "src_port", "dst_port", "protocol")
            if c in flows.columns
        }
        cols["src_ip"], cols["dst_ip"] = src, dst
        cols["attacker"], cols["victim"], cols["swapped"] = attacker, victim, swapped
        cols["inside"] = inside
        vol = _attacker_volumes(num, swapped)
        released: list[Alert] = []
        explained = dict(zip(keep, explanations, strict=True))
        for i in sorted(
            keep + again
        ):  # in record order: a later record's evidence after the alert it adds to
            obs = _observation(cols, vol, i, flow_ids)
            if i not in explained:
                fam = str(verdicts.family[i])
                released += self.gate.observe(str(attacker[i]), fam, float(ts_last[i]), obs)
                continue
            alert = self._alert(cols, i, verdicts, partial[i], explained[i], flow_ids)
            self.stats.reply_flows += bool(swapped[i])
            proven = bool(verdicts.component[i] in (INSPECTION, PROBE, DOWNLOAD, AUTH))
            released += self.gate.admit(alert, obs, proven=proven)
        if not released:
            self._expire()
            return []
        return self._commit(released)

    def _alert(
        self,
        cols: dict[str, np.ndarray],
        i: int,
        verdicts: Any,
        partial: bool,
        top: list[tuple[str, float]],
        flow_ids: np.ndarray | None,
    ) -> Alert:
        fam = str(verdicts.family[i])
        conf = float(verdicts.confidence[i])
        src, dst = str(cols["attacker"][i]), str(cols["victim"][i])
        src_port, dst_port = cols.get("src_port", _NONE)[i], cols.get("dst_port", _NONE)[i]
        if cols["swapped"][i]:  # a reply-only flow: the attacker is the flow's destination
            src_port, dst_port = dst_port, src_port
        comp = self.detector.classifier if verdicts.component[i] == 1 else self.detector.anomaly
        model = comp.name if comp is not None else self.detector.model_name
        how = "unusual for this site" if fam == ANOMALY else "known attack pattern"
        check = _CHECKS.get(int(verdicts.component[i]))
        if check is not None:
            model, how = check.model, check.matched
        elif cols["inside"][i]:
            how = "a botnet-like channel to a server inside the site"
        return Alert(
            timestamp=float(cols["ts_last"][i]),
            src_ip=src,
            dest_ip=dst,
            family=fam,
            severity=self.severity(fam, conf, dst, src),
            score=float(verdicts.score[i]),
            confidence=conf,
            model=model,
            signature_id=signature_id(fam),
            signature=f"IOTGUARD {fam} ({how})",
            flow_id=_int(flow_ids[i]) if flow_ids is not None else None,
            src_port=_int(src_port),
            dest_port=_int(dst_port),
            proto=proto_name(_int(cols.get("protocol", _NONE)[i])),
            partial=bool(partial),
            top_features=top,
            device=self.assets.name(dst) or self.assets.name(src),
        )

    def _external_inside(
        self, verdicts: Any, flagged: np.ndarray, attacker: np.ndarray, victim: np.ndarray
    ) -> np.ndarray:
        """Re-label (in place) the flagged verdicts of an external-only family (``external_families``) of a
        device in the site's networks whose server, the alert's victim, is in them too, as ``Anomaly``; returns
        which rows were. An internet host holding a channel *into* a device keeps its verdict. The
        download check's ``Botnet`` stays: an executable delivered is one whoever serves it (a worm such as Mozi
        has the infected peer next door serve it), where the rule is about a model's guess at a C&C channel."""
        inside = np.zeros(len(flagged), dtype=bool)
        families = self.config.external_families
        if not families or not self._site:
            return inside
        model = verdicts.component != DOWNLOAD
        for i in np.flatnonzero(flagged & model & np.isin(verdicts.family, families)).tolist():
            inside[i] = victim[i] in self._site and attacker[i] in self._site
        if inside.any():
            verdicts.family[inside] = ANOMALY
            self.stats.inside_site += int(inside.sum())
        return inside

    def _inspect(self, flows: pd.DataFrame, verdicts: Any) -> None:
        """Turn the verdicts of flows whose source sent enough probe packets into PortScan alerts, of those
        whose HTTP requests carried enough injection indicators into WebAttack alerts and of those whose source
        received enough Linux executables into Botnet alerts and of those whose VNC server refused the source's
        password often enough into BruteForce alerts (in place; the score is the count, and the last
        rule that matches names the family); flows no model flagged whose HTTP request head stayed unfinished
        long enough become DoS alerts (the score is the seconds)."""
        need_s = self.config.slow_http_seconds
        if need_s is not None and HEAD_OPEN_COLUMN in flows.columns:
            seconds = _column(flows, HEAD_OPEN_COLUMN)
            slow = (seconds >= need_s) & ~verdicts.is_alert
            verdicts.family[slow] = SLOW_HTTP_FAMILY
            verdicts.is_alert[slow] = True
            verdicts.component[slow] = SLOW_HTTP
            verdicts.score[slow] = seconds[slow]
            verdicts.confidence[slow] = 1.0 - 0.5 ** (seconds[slow] / need_s)
        for column, need, family, component in (
            (PROBES_COLUMN, self.config.probe_packets, PROBE_FAMILY, PROBE),
            (HTTP_COLUMN, self.config.http_indicators, WEB_ATTACK, INSPECTION),
            (ELF_COLUMN, self.config.elf_downloads, DOWNLOAD_FAMILY, DOWNLOAD),
            (RFB_FAILURES_COLUMN, self.config.rfb_auth_failures, AUTH_FAMILY, AUTH),
        ):
            if need is None or column not in flows.columns:
                continue
            counts = _column(flows, column)
            hit = counts >= need
            verdicts.family[hit] = family
            verdicts.is_alert[hit] = True
            verdicts.component[hit] = component
            verdicts.score[hit] = counts[hit]
            verdicts.confidence[hit] = 1.0 - 0.5 ** counts[hit]

    def submit(self, alerts: Iterable[Alert]) -> list[Event]:
        """Alerts raised outside the flow detector (MQTT telemetry, the device inventory): suppression, then
        the same folding, store, EVE file and sinks as flow alerts."""
        kept = []
        for alert in alerts:
            if self.suppressor(alert.src_ip, alert.dest_ip, alert.family, alert.timestamp):
                self.stats.suppressed += 1
            else:
                kept.append(alert)
        return self._commit(kept) if kept else []

    def _commit(self, alerts: list[Alert]) -> list[Event]:
        events: list[Event] = []
        touched: dict[int, Incident] = {}
        for alert in alerts:
            incident, opened = self.folder.fold(alert)
            events.append(Event(alert, incident, opened))
            touched[id(incident)] = incident
            self.stats.by_family[alert.family] = self.stats.by_family.get(alert.family, 0) + 1
        self.stats.alerts += len(alerts)
        self.stats.incidents += sum(e.opened for e in events)
        self._expire_gate()  # a sustained attack releases alerts in every batch: the gate must age all the same
        closed = self.folder.expire()
        for inc in closed:
            touched[id(inc)] = inc
        if self.store is not None:
            # one transaction: incidents first (new ones get ids), then the alerts that point at them
            lines = self.store.record(
                list(touched.values()), [e.alert for e in events], [e.incident for e in events]
            )
        else:
            for inc in touched.values():
                if inc.id is None:
                    inc.id = next(self._incident_ids)
            for e in events:
                e.alert.id = next(self._ids)
                e.alert.incident_id = e.incident.id
            lines = None
        if self.eve is not None:
            if lines is not None:
                self.eve.write_lines(lines)
            else:
                self.eve.write(e.alert for e in events)
        for e in events:
            for sink in self.sinks:
                sink(e.alert, e.incident)
        return events

    def _expire(self) -> None:
        self._expire_gate()
        closed = self.folder.expire()
        if closed and self.store is not None:
            self.store.record(closed, [])

    def _expire_gate(self) -> None:
        self.gate.expire(max(self.folder.now, self.gate.now))
        self._gate_stats()

    def _gate_stats(self) -> None:
        self.stats.held = self.gate.held
        self.stats.insufficient_evidence = self.gate.dropped

    def close(self) -> list[Incident]:
        """Close every open incident (end of a capture, or shutdown); returns them with final summaries.
        Alerts the evidence gate still holds are dropped (their evidence never became enough)."""
        self.gate.close()
        self._gate_stats()
        incidents = self.folder.open_incidents()
        for inc in incidents:
            inc.status = "closed"
        if self.store is not None and incidents:
            self.store.record(incidents, [])
        return incidents

    def incidents(self) -> list[Incident]:
        """Every incident this engine opened that is still in memory (open ones)."""
        return self.folder.open_incidents()


class _Missing:
    """A column the flow table lacks: every row reads None."""

    def __getitem__(self, i: int) -> None:
        return None


_NONE: Any = _Missing()


def _column(flows: pd.DataFrame, name: str) -> np.ndarray:
    if name not in flows.columns:
        return np.zeros(len(flows))
    return _finite(pd.to_numeric(flows[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))


def _finite(values: np.ndarray) -> np.ndarray:
    """A count or size column with what is missing as 0 and an infinity as a large finite value."""
    return np.nan_to_num(values, nan=0.0, posinf=1e12, neginf=0.0)


def _observation(
    cols: dict[str, np.ndarray], vol: dict[str, np.ndarray], i: int, flow_ids: np.ndarray | None
) -> Observation:
    """What flow record ``i`` adds to its attacker's evidence."""
    conversation = (
        cols.get("protocol", _NONE)[i], cols["src_ip"][i], cols.get("src_port", _NONE)[i], cols["dst_ip"][i],
        cols.get("dst_port", _NONE)[i],
    )  # fmt: skip
    victim_port = conversation[2] if cols["swapped"][i] else conversation[4]
    return Observation(
        flow=flow_ids[i] if flow_ids is not None else conversation,
        conversation=conversation,
        target=(
            str(cols["victim"][i]),
            conversation[0],
            _int(victim_port),
        ),  # a protocol scan touches protocols
        packets=float(vol["packets"][i]),
        rate=float(vol["rate"][i]),
        bytes=float(vol["bytes"][i]),
        byte_rate=float(vol["byte_rate"][i]),
        received_bytes=float(vol["received_bytes"][i]),
    )


VOLUME_COLUMNS = ("fwd_packets", "fwd_bytes", "bwd_bytes", "flow_duration")
"""Numeric columns the evidence's volumes read besides attribution's (``bwd_packets``)."""


def _attacker_volumes(columns: Any, swapped: np.ndarray) -> dict[str, np.ndarray]:
    """Per flow record: its packets (both directions) and packets per second, and the payload bytes the
    attacker sent (and per second) and received: the flow's forward side, or its backward side where the
    record is attributed to its destination (reply-only flows). A record of zero duration has an infinite
    rate. ``columns``: the numeric columns by name (a flow table will do)."""

    def col(name: str) -> np.ndarray:
        return (
            _finite(np.asarray(columns[name], dtype=np.float64))
            if name in columns
            else np.zeros(len(swapped))
        )

    packets = col("fwd_packets") + col("bwd_packets")
    fwd_b, bwd_b = col("fwd_bytes"), col("bwd_bytes")
    sent_b, got_b = np.where(swapped, bwd_b, fwd_b), np.where(swapped, fwd_b, bwd_b)
    seconds = col("flow_duration") / 1e6
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(seconds > 0, packets / seconds, np.where(packets > 0, np.inf, 0.0))
        byte_rate = np.where(seconds > 0, sent_b / seconds, np.where(sent_b > 0, np.inf, 0.0))
    return {
        "packets": packets,
        "rate": rate,
        "bytes": sent_b,
        "byte_rate": byte_rate,
        "received_bytes": got_b,
    }


def _int(value: Any) -> int | None:
    try:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            return None
        return int(value)
    except (TypeError, ValueError):
        return None


def _median_of_quiet(x: np.ndarray, verdicts: Any) -> np.ndarray | None:
    """Median of this batch's non-alerting flows: the explanation baseline when the detector has none."""
    quiet = x[~verdicts.is_alert]
    if len(quiet) == 0:
        return None
    with np.errstate(all="ignore"):
        return np.nanmedian(np.where(np.isfinite(quiet), quiet, np.nan), axis=0)


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def open_outputs(
    db: str | PathLike[str] | None, eve: str | PathLike[str] | None
) -> tuple[Store | None, EveWriter | None]:
    """Open the store and the EVE writer a command asked for."""
    store = Store(Path(db)) if db else None
    writer = EveWriter(Path(eve)) if eve else None
    return store, writer
