"""The one configuration model of the sensor, read from YAML, then environment, then command-line flags.

Precedence, lowest first:

1. defaults (this module);
2. a YAML file (``--config FILE``, else ``$IOTGUARD_CONFIG``); the sample with a comment on every key is
   ``config/iotguard.yaml`` in the repository;
3. environment variables ``IOTGUARD_<SECTION>__<KEY>`` (nested keys joined with ``__``, case-insensitive),
   for example ``IOTGUARD_API__PORT=9000`` or ``IOTGUARD_TELEMETRY__TOPICS='[sensors/#, plugs/#]'``;
4. command-line flags (``iotguard run --interface eth0`` or the generic ``--set api.port=9000``).

Every problem is reported where the user made it: ``iotguard.yaml:12:3 field 'api.port': ...`` for the file
(line and column from the YAML node marks), ``environment IOTGUARD_API__PORT`` or ``flag --set api.port``.

Secrets (the MQTT password, webhook tokens, an explicit API token) are :class:`pydantic.SecretStr`: they print
as ``**********`` in ``repr``, in logs and in ``iotguard config show``.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from iotguard.core.errors import ConfigError, location
from iotguard.core.schema import FAMILIES
from iotguard.core.yamlfile import MarkedDict, MarkedList, load_yaml

ENV_PREFIX = "IOTGUARD_"
CONFIG_ENV = "IOTGUARD_CONFIG"
REDACTED = "**********"

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _check_network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP address or CIDR network") from exc
    return value


NetworkStr = Annotated[str, AfterValidator(_check_network)]
"""An IP address or CIDR network, checked item by item so an error names the list item's line."""

SITE_NETWORKS: tuple[str, ...] = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10")
"""The site's own networks by default: private (RFC 1918), unique local (RFC 4193) and link-local IPv6
addresses. An address in them is a local device; any other is a remote peer (``inventory.networks``)."""
EXTERNAL_FAMILIES: tuple[str, ...] = ("Botnet",)
"""Families whose server is on the internet by definition: a bot's command-and-control server is the
attacker's machine, reached across the internet (Mirai's C&C, report and loader servers, IoT-23's C&C servers),
not one of the site's own hosts. Detection re-labels a verdict of such a family for a site device's channel to
a server in the site's networks as ``Anomaly``: a long-lived channel to the site's own broker or server is how MQTT sensors, Modbus
pollers and dashboards talk, and a flow classifier's guess alone is no evidence of a C&C."""

# the detection engine's fixed-rule checks (docs/detection.md); each can be set per sensor or turned off (None)
DEFAULT_PROBE_PACKETS = 1
"""One packet is enough: no ordinary stack sends any (``flows.table._probe`` argues each shape)."""
DEFAULT_SLOW_HTTP_SECONDS = 20.0
"""A request head unfinished this long is one a server would have dropped: Apache httpd's mod_reqtimeout gives a
client 20 s for its headers by default (``RequestReadTimeout header=20-40,MinRate=500``); a browser sends its
head at once, and when it spans segments, within a round trip. (nginx waits 60 s; slowloris.py sends one
more header line every 15 s to stay under such limits.)"""
DEFAULT_ELF_DOWNLOADS = 1
"""One executable is enough: the download is the infection, and plain HTTP or a raw stream is no way a device's
legitimate software arrives as a bare ELF file (packages and firmware images have their own formats)."""
DEFAULT_RFB_AUTH_FAILURES = 1
"""One failed VNC login is enough, as in Emerging Threats' "ET INFO VNC Authentication Failure" (sid 2002920),
which alerts on every one: internet VNC scanners try one password per host, so single failures are mostly
theirs (honeypot reports, T-Pot, rank that signature first by far). A user's typo raises it too: the price,
paid at the lowest severity this family gets (confidence 0.5)."""
DEFAULT_HTTP_INDICATORS = 2
"""Two indicators make a WebAttack: one alone is too common (a ``;jsessionid=`` path parameter, an apostrophe
in a search). No benign flow of the lab's training or validation networks carries any (docs/detection.md)."""


# -- capture ------------------------------------------------------------------------------------------
class CaptureConfig(_Section):
    interface: str | None = Field(None, description="Network interface to capture live from.")
    pcap: Path | None = Field(None, description="Capture file to replay instead of a live interface.")
    speed: Literal["realtime", "max"] = Field(
        "max",
        description="Replay speed of --pcap: 'realtime' keeps the capture's timing, 'max' runs flat out.",
    )
    bpf: str | None = Field(None, description="BPF filter applied in the kernel (live capture).")
    snaplen: int = Field(65535, ge=64, le=262144, description="Bytes kept of each packet.")
    promiscuous: bool = Field(True, description="Put the interface in promiscuous mode.")
    buffer_mb: int = Field(32, ge=1, le=4096, description="Kernel capture buffer size in MiB.")
    batch_packets: int = Field(
        2048, ge=1, le=1_000_000, description="Packets handed from capture to the flow meter at once."
    )

    @model_validator(mode="after")
    def _one_source(self) -> CaptureConfig:
        if self.interface and self.pcap:
            raise ValueError("give either capture.interface or capture.pcap, not both")
        return self


# -- flows --------------------------------------------------------------------------------------------
class FlowsConfig(_Section):
    flow_timeout: Seconds = Field(
        120.0, description="A flow ends this many seconds after its first packet (CICFlowMeter)."
    )
    activity_timeout: Seconds = Field(
        5.0, description="An idle gap longer than this (s) ends an active period (active/idle features)."
    )
    close_grace: float | None = Field(
        5.0,
        ge=0,
        description="A TCP connection closed by FIN or RST is emitted once idle this long (null: at flow_timeout).",
    )
    max_flows: int = Field(
        262_144,
        ge=1024,
        le=50_000_000,
        description="Bound of the flow table (rounded down to a power of two); under a flood the least recently seen "
        "flows are evicted (counted).",
    )
    early_packets: int = Field(
        10, ge=0, le=100_000, description="Emit a partial record after this many packets (0: never)."
    )
    early_seconds: float = Field(
        1.0, ge=0, description="Emit a partial record once a flow has lasted this long (0: never)."
    )
    early_again: int = Field(
        100,
        ge=0,
        le=1_000_000,
        description="Emit a second partial record when a flow reaches this many packets (0: never); more than "
        "early_packets.",
    )
    scan_interval: Seconds = Field(
        1.0, description="How often (s) the table is scanned for flows that are due."
    )

    @model_validator(mode="after")
    def _check(self) -> FlowsConfig:
        if self.activity_timeout > self.flow_timeout:
            raise ValueError("flows.activity_timeout must not exceed flows.flow_timeout")
        if self.early_again and self.early_again <= self.early_packets:
            raise ValueError("flows.early_again must exceed flows.early_packets (or be 0)")
        return self


# -- model --------------------------------------------------------------------------------------------
LEARN_FLOWS_MIN = 20
"""Fewer flows cannot both fit a site anomaly model and calibrate its threshold (iotguard.detect.site)."""
LEARN_FLOWS_MAX = 500_000
"""The learnt flows are held in memory while the baseline is fitted: about 0.5 KB each."""


class ModelConfig(_Section):
    path: Path | None = Field(
        None,
        description="Detector directory (e.g. a site baseline: iotguard baseline) or model artifact "
        "(directory or .zip). Empty: the default detector.",
    )
    threshold: float | None = Field(
        None, description="Override the artifact's attack-score threshold for this deployment."
    )
    learn_flows: int = Field(
        0,
        ge=0,
        le=LEARN_FLOWS_MAX,
        description="Learning period: record this many flow records of the site's traffic (in the state "
        "directory), then fit a site baseline on them and switch to it. 0: off.",
    )
    learn_alerts: Literal["record", "suppress", "act"] = Field(
        "record",
        description="Flow alerts while learning: record (stored and shown, no response action), suppress "
        "(not scored at all, as Kitsune's grace period), act (as after learning).",
    )

    @field_validator("learn_flows")
    @classmethod
    def _enough_to_learn(cls, value: int) -> int:
        if 0 < value < LEARN_FLOWS_MIN:
            raise ValueError(f"0 (off) or at least {LEARN_FLOWS_MIN} flow records (got {value})")
        return value


# -- detection ----------------------------------------------------------------------------------------
class SuppressRule(_Section):
    src: NetworkStr | None = Field(None, description="Attacker address or network.")
    dst: NetworkStr | None = Field(None, description="Victim address or network.")
    family: str | None = Field(None, description="Attack family (e.g. PortScan).")
    until: float | None = Field(None, description="Epoch seconds after which the rule lapses.")
    reason: str = Field("", description="Why (shown to operators).")

    @model_validator(mode="after")
    def _something(self) -> SuppressRule:
        if self.src is None and self.dst is None and self.family is None:
            raise ValueError("a suppression rule needs src, dst or family")
        return self


class DetectConfig(_Section):
    confirm_k: int = Field(1, ge=1, description="k of n confirmation: alert after k flagged flows ...")
    confirm_n: int = Field(1, ge=1, description="... among the last n scored flows of the same host.")
    fold_window: Seconds = Field(
        300.0,
        description="Alerts of one attacker and family within this many seconds fold into one incident.",
    )
    fold_fanin: int = Field(
        10,
        ge=2,
        description="Attackers of one victim before further sources fold into one distributed incident.",
    )
    explain: bool = Field(True, description="Attach the top features that drove each alert.")
    evidence: bool = Field(
        True,
        description="Hold an attacker's alerts until they show its family's pattern (docs/detection.md); "
        "false: every alert raises or joins an incident at once.",
    )
    severity: dict[str, Annotated[int, Field(ge=1, le=4)]] = Field(
        default_factory=dict, description="Base severity (1..4) per family, overriding the defaults."
    )
    low_confidence: float = Field(
        0.8, ge=0, le=1, description="Alerts less confident than this are one severity level lower."
    )
    eve_path: Path | None = Field(
        None, description="EVE JSON log of alerts. Empty: eve.json in the state directory."
    )
    suppress: list[SuppressRule] = Field(default_factory=list, description="Alerts that are never raised.")
    external_families: list[str] = Field(
        default_factory=lambda: list(EXTERNAL_FAMILIES),
        description="Families whose server must be outside inventory.networks: a verdict of one of them "
        "for a site device's channel to the site's own server is an Anomaly alert (docs/detection.md). "
        "Empty: off.",
    )
    http_indicators: int | None = Field(
        DEFAULT_HTTP_INDICATORS,
        ge=1,
        description="HTTP injection indicators that make a WebAttack (null: off).",
    )
    probe_packets: int | None = Field(
        DEFAULT_PROBE_PACKETS, ge=1, description="Probe-shaped packets that make a PortScan (null: off)."
    )
    slow_http_seconds: float | None = Field(
        DEFAULT_SLOW_HTTP_SECONDS,
        gt=0,
        description="Seconds a request head stays open before DoS (null: off).",
    )
    elf_downloads: int | None = Field(
        DEFAULT_ELF_DOWNLOADS,
        ge=1,
        description="Executables a device downloads that make a Botnet (null: off).",
    )
    rfb_auth_failures: int | None = Field(
        DEFAULT_RFB_AUTH_FAILURES,
        ge=1,
        description="Failed VNC logins in a connection that make a BruteForce (null: off; a typo raises it too).",
    )

    @field_validator("external_families")
    @classmethod
    def _families(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown families {unknown}: expected some of {', '.join(FAMILIES)}")
        return value

    @model_validator(mode="after")
    def _k_of_n(self) -> DetectConfig:
        if self.confirm_k > self.confirm_n:
            raise ValueError("detect.confirm_k must not exceed detect.confirm_n")
        return self


# -- response -----------------------------------------------------------------------------------------
class RespondConfig(_Section):
    policy: Path | None = Field(None, description="Response policy file (YAML). Empty: log every alert.")
    dry_run: bool | None = Field(
        None, description="Override the policy's dry_run. Empty: the policy's (which defaults to true)."
    )
    allowlist: list[NetworkStr] = Field(
        default_factory=list, description="Never contained, added to the policy's allowlist."
    )
    restore: bool = Field(
        True, description="On start, re-apply blocks still in force with their remaining TTL."
    )


# -- telemetry ----------------------------------------------------------------------------------------
class TelemetryConfig(_Section):
    enabled: bool = Field(False, description="Subscribe to device telemetry over MQTT.")
    from_capture: bool = Field(
        False,
        description="Also read telemetry off the captured traffic: unencrypted MQTT PUBLISH to capture_port "
        "(no broker account needed; each message names its publisher's address).",
    )
    capture_port: Port = Field(1883, description="Broker port whose traffic from_capture reads.")
    url: str | None = Field(
        None, description="Broker URL: mqtt://host:1883 or mqtts://host:8883 (TLS). Credentials go below."
    )
    host: str = Field("127.0.0.1", description="Broker host (when no url is given).")
    port: Port = Field(1883, description="Broker port.")
    tls: bool = Field(False, description="Connect with TLS.")
    ca_file: Path | None = Field(None, description="CA bundle that signs the broker's certificate.")
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(None, description="Client key for mutual TLS.")
    tls_insecure: bool = Field(False, description="Skip the broker hostname check (testing only).")
    username: str | None = Field(None, description="MQTT user name.")
    password: SecretStr | None = Field(None, description="MQTT password (secret; never logged).")
    client_id: str = Field("iotguard-sensor", description="MQTT client id of the sensor.")
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive, seconds.")
    topics: list[str] = Field(default_factory=lambda: ["#"], description="Topic filters to subscribe to.")
    ignore_topics: list[str] = Field(
        default_factory=lambda: ["iotguard/#"],
        description="Topic filters never learned or alerted on (the sensor's own messages).",
    )
    device_level: int = Field(
        1, ge=0, description="Which topic level names the device (sensors/<device>/temp: 1)."
    )
    device_field: str | None = Field(
        "device_id", description="JSON payload field naming the device; wins over the topic level."
    )
    reconnect_min: Seconds = Field(1.0, description="First reconnect delay, seconds (doubles each try).")
    reconnect_max: Seconds = Field(60.0, description="Longest reconnect delay, seconds.")
    queue_size: int = Field(10_000, ge=10, description="Messages buffered between the broker and detection.")
    warmup_messages: int = Field(
        50, ge=5, description="Messages a device sends before its baseline is trusted."
    )
    global_warmup: Seconds = Field(
        60.0, description="Seconds after start during which new topics and devices are learned silently."
    )
    flood_factor: float = Field(
        5.0, gt=1, description="A device's message rate above factor x its baseline is a flood ..."
    )
    flood_min_rate: float = Field(20.0, gt=0, description="... if also above this many messages/s.")
    range_margin: float = Field(
        0.5, ge=0, description="Readings beyond learned [min, max] +- margin x (max - min) are out of range."
    )
    frozen_count: int = Field(
        30, ge=3, description="A numeric field that used to vary and repeats this many times is frozen."
    )
    size_sigma: float = Field(
        6.0, gt=0, description="Payload sizes beyond mean +- sigma x std are anomalies."
    )
    alert_cooldown: Seconds = Field(
        60.0, description="Seconds before the same anomaly of one device alerts again."
    )
    seed: int = Field(0, description="Seed of the baselines' sampling.")

    @model_validator(mode="after")
    def _url(self) -> TelemetryConfig:
        if self.url:
            parts = urlsplit(self.url)
            if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
                raise ValueError(f"telemetry.url scheme {parts.scheme!r} is not mqtt:// or mqtts://")
            if not parts.hostname:
                raise ValueError("telemetry.url has no host")
            try:
                port = parts.port
            except ValueError as exc:
                raise ValueError(f"telemetry.url has a bad port: {exc}") from exc
            tls = parts.scheme in ("mqtts", "ssl")
            # The URL is a shorthand: it sets host, port, tls and (if given) credentials, then is dropped so
            # a password in it is never shown again.
            object.__setattr__(self, "host", parts.hostname)
            object.__setattr__(self, "port", port or (8883 if tls else 1883))
            object.__setattr__(self, "tls", tls or self.tls)
            if parts.username:
                object.__setattr__(self, "username", unquote(parts.username))
            if parts.password:
                object.__setattr__(self, "password", SecretStr(unquote(parts.password)))
            object.__setattr__(self, "url", f"{'mqtts' if tls else 'mqtt'}://{parts.hostname}:{self.port}")
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("telemetry.reconnect_min must not exceed telemetry.reconnect_max")
        for topic in [*self.topics, *self.ignore_topics]:
            if not _valid_topic_filter(topic):
                raise ValueError(f"{topic!r} is not a valid MQTT topic filter")
        return self


def _valid_topic_filter(topic: str) -> bool:
    if not topic or "\x00" in topic:
        return False
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


# -- API and dashboard --------------------------------------------------------------------------------
class ApiConfig(_Section):
    enabled: bool = Field(True, description="Serve the REST API, the dashboard and /metrics.")
    host: str = Field("127.0.0.1", description="Address to bind. Anything but loopback exposes the sensor.")
    port: Port = Field(8787, description="TCP port.")
    token_file: Path | None = Field(
        None, description="File holding the API token (created, mode 0600). Empty: api-token in state dir."
    )
    token: SecretStr | None = Field(
        None, description="Use this token instead of the generated one (secret; never logged)."
    )
    metrics_public: bool = Field(False, description="Serve /metrics without the token (for Prometheus).")
    max_page_size: int = Field(500, ge=1, le=10_000, description="Largest page the API returns.")
    dashboard: bool = Field(True, description="Serve the web dashboard at /.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if value in ("localhost", ""):
            return "127.0.0.1"
        try:
            ipaddress.ip_address(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IP address to bind") from exc
        return value


# -- store, logging, service ----------------------------------------------------------------------------
class StoreConfig(_Section):
    path: Path | None = Field(None, description="SQLite database. Empty: iotguard.db in the state directory.")
    retention_days: float = Field(
        30.0, ge=0, description="Alerts, incidents and actions older than this are deleted (0: keep all)."
    )


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    file: Path | None = Field(None, description="Also log to this file.")
    format: Literal["text", "json"] = Field("text", description="Log line format.")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class ServiceConfig(_Section):
    state_dir: Path | None = Field(
        None,
        description="Where state lives (store, token, checkpoints). Empty: $IOTGUARD_HOME or ~/.local/share/iotguard.",
    )
    packet_queue: int = Field(
        32, ge=1, le=100_000, description="Packet batches buffered before the flow meter."
    )
    flow_queue: int = Field(
        8, ge=1, le=100_000, description="Flow record frames (a few MB each) buffered before detection."
    )
    alert_queue: int = Field(10_000, ge=1, description="Alerts buffered before the store and response.")
    checkpoint_interval: Seconds = Field(
        10.0, description="Seconds between state checkpoints (inventory, baselines, pcap position)."
    )
    stats_interval: Seconds = Field(1.0, description="Seconds between throughput samples (dashboard charts).")
    shutdown_timeout: Seconds = Field(20.0, description="Seconds a clean shutdown may take to flush.")


# -- devices and inventory ------------------------------------------------------------------------------
class DeviceConfig(_Section):
    name: str | None = Field(None, description="Name shown in alerts and the dashboard.")
    address: NetworkStr | None = Field(None, description="IP address or network of the device.")
    mac: str | None = Field(None, description="MAC address, if it is fixed.")
    mqtt_id: str | None = Field(None, description="The device's name in telemetry topics/payloads.")
    tags: list[str] = Field(default_factory=list, description="Free tags matched by the response policy.")
    criticality: Literal["low", "normal", "high"] = Field(
        "normal", description="high: alerts about it are one level more severe; low: one level less."
    )

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"(?i)[0-9a-f]{2}([:-][0-9a-f]{2}){5}", value):
            raise ValueError(f"{value!r} is not a MAC address like aa:bb:cc:dd:ee:ff")
        return value.lower().replace("-", ":")

    @model_validator(mode="after")
    def _named(self) -> DeviceConfig:
        if not (self.address or self.mqtt_id or self.mac):
            raise ValueError("a device needs an address, a mac or an mqtt_id")
        return self

    @property
    def label(self) -> str:
        return self.name or self.mqtt_id or self.address or self.mac or "?"


class InventoryConfig(_Section):
    networks: list[NetworkStr] = Field(
        default_factory=lambda: list(SITE_NETWORKS),
        description="The site's networks: addresses in them are local devices, others remote peers (the "
        "inventory, and detection's external-only families such as Botnet, docs/detection.md).",
    )
    max_devices: int = Field(
        65_536, ge=16, description="Bound of the inventory (least recently seen evicted)."
    )
    window: Seconds = Field(60.0, description="Seconds of traffic summarised into one behaviour sample.")
    warmup_windows: int = Field(10, ge=2, description="Samples that make a device's fingerprint.")
    drift_threshold: float = Field(
        0.6, gt=0, le=1, description="Distance (0..1) from its fingerprint at which a device is flagged."
    )
    drift_windows: int = Field(2, ge=1, description="Consecutive unlike samples before a device is flagged.")


class Config(_Section):
    """Every option of the sensor. Sections follow the pipeline, left to right."""

    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    flows: FlowsConfig = Field(default_factory=FlowsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    detect: DetectConfig = Field(default_factory=DetectConfig)
    respond: RespondConfig = Field(default_factory=RespondConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    inventory: InventoryConfig = Field(default_factory=InventoryConfig)
    devices: list[DeviceConfig] = Field(default_factory=list, description="Known devices.")

    # -- derived paths --------------------------------------------------------------------------------
    def state_path(self) -> Path:
        from iotguard.core.paths import state_dir

        return state_dir(self.service.state_dir)

    def store_path(self) -> Path:
        return self.store.path or self.state_path() / "iotguard.db"

    def eve_path(self) -> Path:
        return self.detect.eve_path or self.state_path() / "eve.json"

    def token_path(self) -> Path:
        return self.api.token_file or self.state_path() / "api-token"

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data with every secret replaced by ``**********``."""
        return _plain(self)


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# -- loading --------------------------------------------------------------------------------------------
Key = tuple[str | int, ...]


@dataclass(frozen=True)
class _Origin:
    """Where one value came from, to name it in an error."""

    kind: Literal["file", "env", "flag"]
    name: str
    line: int | None = None
    column: int | None = None

    def where(self, field: str) -> str:
        if self.kind == "file":
            return location(self.name, line=self.line, column=self.column, field=field)
        if self.kind == "env":
            return f"environment {self.name}"
        return f"flag {self.name}"


def load_config(
    path: str | PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective :class:`Config`.

    ``path``: YAML file (``None``: ``$IOTGUARD_CONFIG`` if set, else defaults only). ``env``: the environment
    (default ``os.environ``). ``overrides``: dotted keys from command-line flags, e.g.
    ``{"capture.interface": "eth0"}``; ``flag_names`` maps a dotted key to the flag the user typed, for
    error messages. Raises :class:`ConfigError` (all problems listed in ``.problems``).
    """
    env = os.environ if env is None else env
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    data: dict[str, Any] = {}
    origins: dict[Key, _Origin] = {}
    if path is not None:
        data, origins = _read_yaml(Path(path))
    for key, value, origin in _env_values(env):
        _set(data, key, value)
        origins[key] = origin
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        key = tuple(dotted.split("."))
        _set(data, key, _parse_text(value) if isinstance(value, str) else value)
        origins[key] = _Origin("flag", (flag_names or {}).get(dotted, f"--set {dotted}"))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, origins, Path(path) if path is not None else None) from None


def parse_set_option(item: str) -> tuple[str, str]:
    """``"api.port=9000"`` -> ``("api.port", "9000")``; the generic ``--set`` flag."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", key):
        raise ConfigError(f"bad --set {item!r}", where="flag --set", expected="section.key=value")
    return key, value


def _parse_text(value: str) -> Any:
    # Environment and flag values are strings; pydantic coerces "9000" or "true" itself. Only lists and maps
    # need parsing, written in YAML flow style: "[a, b]" or "{k: v}". "null" clears an optional value.
    text = value.strip()
    if text == "null":
        return None
    if text[:1] in "[{":
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return value
    return value


def _env_values(env: Mapping[str, str]) -> list[tuple[Key, Any, _Origin]]:
    sections = set(Config.model_fields)
    found = []
    for name, value in env.items():
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue  # IOTGUARD_HOME, IOTGUARD_DATA_DIR, IOTGUARD_CONFIG are not config keys
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if parts[0] not in sections or not all(parts):
            raise ConfigError(
                f"unknown configuration section {parts[0]!r}",
                where=f"environment {name}",
                expected="IOTGUARD_<SECTION>__<KEY> with a section among " + ", ".join(sorted(sections)),
            )
        key: Key = tuple(int(p) if p.isdigit() else p for p in parts)
        found.append((key, _parse_text(value), _Origin("env", name)))
    return sorted(found, key=lambda item: item[2].name)


def _set(data: Any, key: Key, value: Any) -> None:
    node = data
    for i, part in enumerate(key[:-1]):
        nxt = key[i + 1]
        if isinstance(node, list) and isinstance(part, int):
            while len(node) <= part:
                node.append({})
            node = node[part]
            continue
        if not isinstance(node.get(part), dict | list):
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = key[-1]
    if isinstance(node, list) and isinstance(last, int):
        while len(node) <= last:
            node.append(None)
        node[last] = value
    else:
        node[last] = value


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[Key, _Origin]]:
    if not path.is_file():
        raise ConfigError("configuration file not found", where=str(path))
    data = load_yaml(path)
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"top level is a {'list' if isinstance(data, list) else type(data).__name__}",
            where=location(path, line=1),
            expected="a mapping of sections",
        )
    origins: dict[Key, _Origin] = {}
    _marks(data, (), str(path), origins)
    return data, origins


def _marks(node: Any, key: Key, path: str, origins: dict[Key, _Origin]) -> None:
    """Where each key and list item was written (``core.yamlfile`` keeps the marks on the data)."""
    if isinstance(node, MarkedDict):
        for name, (line, column) in node.marks.items():
            origins[(*key, name)] = _Origin("file", path, line, column)
            _marks(node[name], (*key, name), path, origins)
    elif isinstance(node, MarkedList):
        for i, (line, column) in enumerate(node.marks):
            origins[(*key, i)] = _Origin("file", path, line, column)
            _marks(node[i], (*key, i), path, origins)


def _origin_of(loc: Key, origins: dict[Key, _Origin]) -> _Origin | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in origins:
            return origins[loc[:n]]
    return None


def _model_at(loc: Key) -> type[BaseModel] | None:
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        model = _inner_model(annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _describe(error: Mapping[str, Any], loc: Key) -> tuple[str, str | None]:
    kind = error["type"]
    msg = str(error["msg"])
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = sorted(parent.model_fields) if parent else []
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        what = f"unknown key {loc[-1]!r}" + (f" (did you mean {guess[0]!r}?)" if guess else "")
        return what, ("one of " + ", ".join(known)) if known else None
    if kind == "missing":
        return "required key is missing", None
    if kind == "value_error":
        return msg.removeprefix("Value error, "), None
    shown = error.get("input")
    got = f"got {shown!r}" if not isinstance(shown, dict | list) else f"got a {type(shown).__name__}"
    expected = msg.removeprefix("Input should be ").removeprefix("input should be ")
    return f"invalid value, {got}", expected


def _config_error(exc: ValidationError, origins: dict[Key, _Origin], path: Path | None) -> ConfigError:
    problems: list[ConfigError] = []
    for error in exc.errors():
        # Drop pydantic's internal loc parts (e.g. the function name of an after-validator).
        loc: Key = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if error["type"] == "value_error":
            # A cross-field check raised on a section names the key it is about ("telemetry.url ..."):
            # point at that key rather than at the section.
            named = re.match(
                r"(?:give either )?([a-z_]+(?:\.[a-z_]+)+)", str(error["msg"]).removeprefix("Value error, ")
            )
            if named:
                key = tuple(named.group(1).split("."))
                if key[: len(loc)] == loc and key in origins:
                    loc = key
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        origin = _origin_of(loc, origins)
        if origin is not None:
            where = origin.where(dotted)
        elif path is not None:
            where = location(path, field=dotted)
        else:
            where = f"field {dotted!r}"
        what, expected = _describe(error, loc)
        problems.append(ConfigError(what, where=where, expected=expected))
    first = problems[0]
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    error = ConfigError(
        first.what + more if not first.expected else first.what,
        where=first.where,
        expected=(first.expected + more) if first.expected else None,
    )
    error.problems = problems  # type: ignore[attr-defined]
    return error


def problems_of(error: ConfigError) -> list[ConfigError]:
    """Every problem a :class:`ConfigError` from :func:`load_config` carries (at least itself)."""
    return list(getattr(error, "problems", None) or [error])
