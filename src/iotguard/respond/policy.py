"""The response policy: a YAML file that maps what was detected to what to do.

See ``docs/response.md`` and the commented sample ``respond/policy.example.yaml``. Errors name the file,
line and field. ``${NAME}`` in any value is replaced by the environment variable ``NAME`` (keep tokens and
passwords out of the file); a missing variable is an error naming the line, except to :func:`check_policy`
(``iotguard respond check``), which checks the file's shape where the sensor's secrets are not set.
"""

from __future__ import annotations

import os
import re
from os import PathLike
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from iotguard.core.config import DeviceConfig, NetworkStr
from iotguard.core.errors import ConfigError, location
from iotguard.core.families import FamilyName
from iotguard.core.yamlfile import MarkedDict, MarkedList, load_yaml, validate
from iotguard.respond.nft import HOOKS, parse_rate

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Match(_Strict):
    """All given conditions must hold (an absent condition matches everything)."""

    family: list[FamilyName] | None = None
    """Alert family among ``iotguard.core.families.ALERT_FAMILIES``; any other name is an error (a typo would
    silently never match)."""
    severity: int | None = Field(None, ge=1, le=4)
    """Match alerts at least this severe (1 most severe): ``severity: 2`` matches 1 and 2."""
    min_confidence: float | None = Field(None, ge=0, le=1)
    src: list[NetworkStr] | None = None
    """Attacker in one of these networks."""
    dst: list[NetworkStr] | None = None
    """Victim in one of these networks."""
    src_tags: list[str] | None = None
    """Attacker is a configured device with any of these tags."""
    dst_tags: list[str] | None = None
    source: list[Literal["flow", "telemetry", "inventory"]] | None = None

    @field_validator("family", "src", "dst", "src_tags", "dst_tags", "source", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


Target = Literal["src", "dst"]


class LogAction(_Strict):
    level: Literal["debug", "info", "warning", "error", "critical"] = "warning"


class WebhookAction(_Strict):
    url: str
    token: str | None = None
    """Sent as ``Authorization: Bearer <token>``; use ``${ENV_VAR}``. Never logged or stored."""
    headers: dict[str, str] = {}
    timeout: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0, le=10)
    backoff: float = Field(0.5, ge=0)
    """First retry delay in seconds; doubles on each retry."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL")
        return v


class SyslogAction(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(514, ge=1, le=65535)
    protocol: Literal["udp", "tcp"] = "udp"
    facility: str = "local0"
    app_name: str = "iotguard"

    @field_validator("facility")
    @classmethod
    def _facility(cls, v: str) -> str:
        from iotguard.respond.notify import FACILITIES

        if v not in FACILITIES:
            raise ValueError(f"unknown facility {v!r}; expected one of {', '.join(FACILITIES)}")
        return v


class MqttAction(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    topic: str
    """May use {src_ip}, {dest_ip}, {target}, {family}, {severity}, {incident_id}, {alert_id}."""
    payload: str | None = None
    """Template as for topic; default: the alert and incident as JSON."""
    qos: int = Field(1, ge=0, le=2)
    retain: bool = False
    username: str | None = None
    password: str | None = None
    tls: bool = False
    target: Target = "src"


class BlockAction(_Strict):
    target: Target = "src"
    ttl: float | None = Field(None, gt=0)
    """Seconds; default ``limits.default_ttl``; never more than ``limits.max_ttl``."""


class QuarantineAction(BlockAction):
    management: list[NetworkStr] = []
    """Addresses the device may still reach, besides ``nftables.management``."""


class RateLimitAction(BlockAction):
    rate: str = "100/second"
    """Packets per second, minute or hour: ``50/second``."""

    @field_validator("rate")
    @classmethod
    def _rate(cls, v: str) -> str:
        parse_rate(v)
        return v


ACTION_TYPES: dict[str, type[BaseModel]] = {
    "log": LogAction,
    "webhook": WebhookAction,
    "syslog": SyslogAction,
    "mqtt": MqttAction,
    "block": BlockAction,
    "quarantine": QuarantineAction,
    "ratelimit": RateLimitAction,
}
CONTAINMENT = ("block", "quarantine", "ratelimit")


class ActionItem(_Strict):
    """Exactly one of the keys below: ``- block: {ttl: 600}`` (``- log`` alone is short for ``- log: {}``)."""

    log: LogAction | None = None
    webhook: WebhookAction | None = None
    syslog: SyslogAction | None = None
    mqtt: MqttAction | None = None
    block: BlockAction | None = None
    quarantine: QuarantineAction | None = None
    ratelimit: RateLimitAction | None = None

    @model_validator(mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v not in ACTION_TYPES:
                raise ValueError(f"unknown action {v!r}; expected one of {', '.join(ACTION_TYPES)}")
            return {v: {}}
        if isinstance(v, dict):
            out = dict(v)
            for k in ACTION_TYPES:
                if k in out and out[k] is None:
                    out[k] = {}
            return out
        return v

    @model_validator(mode="after")
    def _one(self) -> ActionItem:
        given = [k for k in ACTION_TYPES if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"an action has exactly one of {', '.join(ACTION_TYPES)} (got {given or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ACTION_TYPES if getattr(self, k) is not None)

    @property
    def params(self) -> BaseModel:
        return getattr(self, self.kind)


class Rule(_Strict):
    name: str
    match: Match = Match()
    actions: list[ActionItem] = Field(min_length=1)
    stop: bool = False
    """Do not evaluate later rules for an alert this rule matched."""


class Limits(_Strict):
    max_blocks_per_minute: int = Field(10, ge=0)
    """Containment actions (block, quarantine, rate limit) applied in any 60 s; more are skipped."""
    default_ttl: float = Field(600, gt=0)
    max_ttl: float = Field(86400, gt=0)

    @model_validator(mode="after")
    def _ttl(self) -> Limits:
        if self.default_ttl > self.max_ttl:
            raise ValueError(f"default_ttl ({self.default_ttl}) exceeds max_ttl ({self.max_ttl})")
        return self


class NftablesConfig(_Strict):
    table: str = Field("iotguard", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
    family: Literal["inet", "ip", "ip6", "bridge"] = "inet"
    hooks: list[Literal["input", "forward", "output"]] = list(HOOKS)
    netns: str | None = None
    """Apply rules inside this network namespace (``ip netns exec``)."""
    management: list[NetworkStr] = []
    """What a quarantined device may still reach (e.g. the gateway's management address)."""


class Policy(_Strict):
    version: Literal[1] = 1
    dry_run: bool = True
    """Record what would be done without doing it. ``iotguard detect --apply`` turns it off."""
    allowlist: list[NetworkStr] = []
    """Addresses and networks that are never blocked, quarantined or rate limited."""
    limits: Limits = Limits()
    nftables: NftablesConfig = NftablesConfig()
    devices: list[DeviceConfig] = []
    rules: list[Rule] = []


def _expand_env(
    data: Any,
    path: Path,
    mark: tuple[int, int] | None = None,
    unset: list[tuple[str, str]] | None = None,
) -> Any:
    """Replace ``${NAME}`` by the environment variable, keeping the YAML marks. An unset variable is an error,
    or, given ``unset``, left as written and recorded there as (name, where)."""
    if isinstance(data, MarkedDict):
        for k in list(data):
            data[k] = _expand_env(data[k], path, data.marks.get(k), unset)
        return data
    if isinstance(data, MarkedList):
        for i in range(len(data)):
            data[i] = _expand_env(data[i], path, data.marks[i], unset)
        return data
    if isinstance(data, str) and "${" in data:

        def sub(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1))
            if value is None:
                where = location(path, line=mark[0], column=mark[1]) if mark else str(path)
                if unset is None:
                    raise ConfigError(f"environment variable {m.group(1)} is not set", where=where)
                unset.append((m.group(1), where))
                return m.group(0)
            return value

        return _ENV.sub(sub, data)
    return data


def load_policy(path: str | PathLike[str]) -> Policy:
    """Read and check a policy file; any error names the line."""
    path = Path(path)
    return validate(Policy, _expand_env(_read(path), path), path)


def check_policy(path: str | PathLike[str]) -> tuple[Policy, list[ConfigError]]:
    """Check a policy file's shape without the secrets it takes from the environment (``iotguard respond
    check`` runs where the sensor's secrets are not set). Returns the policy and one warning per ``${NAME}``
    that is unset here (needed at run time); such a reference is checked as the text ``${NAME}``. Any other
    problem raises :class:`ConfigError` as :func:`load_policy` does."""
    path = Path(path)
    unset: list[tuple[str, str]] = []
    data = _expand_env(_read(path), path, unset=unset)
    try:
        policy = validate(Policy, data, path)
    except ConfigError as exc:
        # A value that is only an unset ${NAME} (a whole URL, a port) cannot pass for one: say so.
        at = exc.where or ""
        names = [name for name, where in unset if at == where or at.startswith(f"{where} ")]
        if names:
            exc.what += f" (it is ${{{names[0]}}}, and {names[0]} is not set here)"
        raise
    warnings = [
        ConfigError(f"needed at run time: environment variable {name} is not set", where=where)
        for name, where in unset
    ]
    return policy, warnings


def _read(path: Path) -> Any:
    data = load_yaml(path)
    if data is not None and not isinstance(data, dict):
        raise ConfigError("a policy is a mapping of keys (dry_run, allowlist, rules, ...)", where=str(path))
    return data


def default_policy() -> Policy:
    """What ``iotguard detect`` uses without ``--policy``: log every alert, nothing else."""
    return Policy(rules=[Rule(name="log-all", actions=[ActionItem(log=LogAction())])])
