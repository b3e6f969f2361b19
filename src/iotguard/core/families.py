"""The families an alert can carry, and the check that a family a user wrote is one of them.

A policy rule (``match: {family: ...}``), a suppression rule or a severity override naming a family no alert
ever carries is a typo that silently disables itself, so every family a user writes is checked against
:data:`ALERT_FAMILIES` when the file is read.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Final

from pydantic import AfterValidator

from iotguard.core.schema import BENIGN, FAMILIES

ANOMALY: Final = "Anomaly"
"""Traffic unlike the site's own, with no known attack's pattern: the anomaly model, an external-only family's
verdict inside the site (``detect.external_families``), a device unlike its own fingerprint (inventory)."""
SENSOR_ANOMALY: Final = "SensorAnomaly"
"""A device's telemetry readings out of their learned range, or frozen (telemetry)."""

ALERT_FAMILIES: Final = (*(f for f in FAMILIES if f != BENIGN), ANOMALY, SENSOR_ANOMALY)
"""Every family an alert can carry: the flow families (the classifiers are trained on :data:`FAMILIES`, and
the fixed-rule checks raise PortScan, DoS, Botnet, BruteForce and WebAttack), ``Anomaly`` and
``SensorAnomaly``; telemetry also raises MQTTAbuse and Spoofing, and the inventory Spoofing. ``Benign`` is not
one: nothing alerts as benign."""


def check_family(name: str) -> str:
    """``name`` if it is one of :data:`ALERT_FAMILIES`; else ``ValueError`` naming the nearest one."""
    if name in ALERT_FAMILIES:
        return name
    # Compared in lower case: "Ddos" is nearest "DDoS" though most of its letters differ in case.
    by_lower = {f.lower(): f for f in ALERT_FAMILIES}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    hint = f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
    if name == BENIGN:
        hint = " (benign traffic never alerts)"
    raise ValueError(f"unknown family {name!r}{hint}; expected one of {', '.join(ALERT_FAMILIES)}")


FamilyName = Annotated[str, AfterValidator(check_family)]
"""A family name checked item by item, so an error names the item's line."""
