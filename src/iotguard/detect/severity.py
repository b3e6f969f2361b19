"""Alert severity (Suricata's scale: 1 most severe, 4 least) from family, confidence and asset criticality.

severity = base[family] - 1 if the victim (or attacker) is a high-criticality asset
                        + 1 if the victim is a low-criticality asset
                        + 1 if confidence < low_confidence
clamped to 1..4.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from iotguard.detect.assets import Assets

DEFAULT_FAMILY_SEVERITY: dict[str, int] = {
    "Botnet": 1,
    "DDoS": 1,
    "Exfiltration": 1,
    "Heartbleed": 1,
    "Infiltration": 1,
    "DoS": 2,
    "BruteForce": 2,
    "WebAttack": 2,
    "MQTTAbuse": 2,
    "Spoofing": 2,
    "PortScan": 3,
    "Anomaly": 3,
}
UNKNOWN_FAMILY_SEVERITY = 3


class SeverityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family: dict[str, int] = Field(default_factory=dict)
    """Overrides of the base severity per family (1..4)."""
    low_confidence: float = 0.8
    """Alerts below this calibrated confidence are one level less severe."""


class SeverityModel:
    def __init__(self, config: SeverityConfig | None = None, assets: Assets | None = None) -> None:
        config = config or SeverityConfig()
        self.base: Mapping[str, int] = DEFAULT_FAMILY_SEVERITY | config.family
        self.low_confidence = config.low_confidence
        self.assets = assets or Assets()

    def __call__(
        self, family: str, confidence: float, victim: str | None, attacker: str | None = None
    ) -> int:
        level = self.base.get(family, UNKNOWN_FAMILY_SEVERITY)
        crit = self.assets.criticality(victim)
        if crit == "high" or self.assets.criticality(attacker) == "high":
            level -= 1  # a critical device attacked, or a critical device behaving as an attacker
        elif crit == "low":
            level += 1
        if not confidence >= self.low_confidence:  # NaN counts as low
            level += 1
        return max(1, min(4, level))
