"""Every family a user writes (sensor config, response policy) must be one an alert can carry: a typo would
silently disable the rule it sits in. The list of families is checked against every source of alerts."""

from __future__ import annotations

import ast
import inspect

import pytest

from iotguard.core.config import load_config, problems_of
from iotguard.core.errors import ConfigError
from iotguard.core.families import ALERT_FAMILIES, check_family
from iotguard.core.schema import BENIGN, FAMILIES


def test_every_family_an_alert_can_carry_is_known():
    """The families the detection engine, its fixed-rule checks, telemetry and the inventory raise. A family
    added to any of them without being added to ALERT_FAMILIES would be refused in policies: this fails."""
    from iotguard.detect import engine
    from iotguard.detect.detector import ANOMALY
    from iotguard.detect.evidence import DEFAULT_RULES, DISTRIBUTED_FAMILIES
    from iotguard.detect.severity import DEFAULT_FAMILY_SEVERITY
    from iotguard.service import inventory
    from iotguard.telemetry.detector import KINDS

    emitted = {ANOMALY, *(f for f in FAMILIES if f != BENIGN)}  # classifiers learn FAMILIES (the lab too)
    emitted |= {engine.WEB_ATTACK, engine.PROBE_FAMILY, engine.SLOW_HTTP_FAMILY, engine.DOWNLOAD_FAMILY}
    emitted |= {engine.AUTH_FAMILY, *engine.EXTERNAL_FAMILIES, *DISTRIBUTED_FAMILIES}
    emitted |= {family for _, family, _, _ in KINDS.values()}
    emitted |= set(DEFAULT_FAMILY_SEVERITY) | set(DEFAULT_RULES)
    # the inventory names its families as the 4th argument of each self._alert(...) call
    tree = ast.parse(inspect.getsource(inventory))
    calls = [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "_alert"
    ]  # fmt: skip
    assert calls
    for call in calls:
        assert isinstance(call.args[3], ast.Constant), "inventory alert family is not a literal any more"
        emitted.add(call.args[3].value)
    assert emitted == set(ALERT_FAMILIES)
    assert {"SensorAnomaly", "Spoofing", "MQTTAbuse", "Anomaly"} <= emitted


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("Ddos", "did you mean 'DDoS'?"),
        ("PortScn", "did you mean 'PortScan'?"),
        ("portscan", "did you mean 'PortScan'?"),
        ("mqttabuse", "did you mean 'MQTTAbuse'?"),
        ("Benign", "benign traffic never alerts"),
    ],
)
def test_unknown_family_names_the_nearest(name, hint):
    with pytest.raises(ValueError, match="unknown family") as exc:
        check_family(name)
    assert hint in str(exc.value) and "expected one of DoS, DDoS" in str(exc.value)
    assert check_family("SensorAnomaly") == "SensorAnomaly"


def test_config_families_are_checked_with_file_line_and_hint(tmp_path):
    """The reviewer's file: detect.severity and detect.suppress accepted any family; now each is refused."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "detect:\n"
        "  severity: {Ddos: 1, PortScan: 4}\n"
        "  suppress: [{family: PortScn, src: 10.0.0.1}]\n"
        "  external_families: [Botnet, Botnett]\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    messages = [p.message for p in problems_of(exc.value)]
    assert [m.split("; expected")[0] for m in messages] == [
        f"{path}:2:14 field 'detect.severity.Ddos': unknown family 'Ddos' (did you mean 'DDoS'?)",
        f"{path}:3:15 field 'detect.suppress.0.family': unknown family 'PortScn' (did you mean 'PortScan'?)",
        f"{path}:4:31 field 'detect.external_families.1': unknown family 'Botnett' (did you mean 'Botnet'?)",
    ]


def test_config_families_from_the_environment_are_checked():
    with pytest.raises(ConfigError, match=r"environment IOTGUARD_DETECT__SEVERITY: unknown family 'dos'"):
        load_config(env={"IOTGUARD_DETECT__SEVERITY": "{dos: 1}"})


def test_every_real_family_is_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    lines = [f"    - {{family: {f}}}" for f in ALERT_FAMILIES]
    path.write_text(
        "detect:\n  severity: {SensorAnomaly: 1, Anomaly: 4, Spoofing: 1}\n  suppress:\n" + "\n".join(lines)
    )
    cfg = load_config(path, env={})
    assert [r.family for r in cfg.detect.suppress] == list(ALERT_FAMILIES)
    assert cfg.detect.severity == {"SensorAnomaly": 1, "Anomaly": 4, "Spoofing": 1}
