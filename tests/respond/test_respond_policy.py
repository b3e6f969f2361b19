"""Policy files: the sample loads; every kind of mistake gives one clear line naming the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotguard.core.errors import ConfigError
from iotguard.respond.policy import load_policy

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "iotguard" / "respond" / "policy.example.yaml"


def test_sample_policy_loads(monkeypatch):
    monkeypatch.setenv("IOTGUARD_WEBHOOK_TOKEN", "t0k")
    monkeypatch.setenv("IOTGUARD_MQTT_PASSWORD", "pw")
    policy = load_policy(SAMPLE)
    assert policy.dry_run is True
    assert [r.name for r in policy.rules][:2] == ["notify-everything", "contain-floods"]
    assert policy.rules[1].actions[1].webhook.token == "t0k"
    assert policy.rules[1].actions[0].kind == "block"


def test_sample_policy_names_missing_env(monkeypatch):
    monkeypatch.delenv("IOTGUARD_WEBHOOK_TOKEN", raising=False)
    with pytest.raises(ConfigError) as err:
        load_policy(SAMPLE)
    assert "IOTGUARD_WEBHOOK_TOKEN is not set" in str(err.value)
    line = next(
        i for i, t in enumerate(SAMPLE.read_text().splitlines(), 1) if "${IOTGUARD_WEBHOOK_TOKEN}" in t
    )
    assert f"policy.example.yaml:{line}:" in str(err.value)


CASES = [
    # (policy text, line named, fragment of the message)
    ("rules:\n  - name: a\n    actions:\n      - block: {ttl: soon}\n", 4, "ttl"),
    ("rules:\n  - name: a\n    actions: [log]\n    mtach: {}\n", 4, "unknown key"),
    ("allowlist:\n  - 192.168.1.1\n  - 300.1.1.1\n", 3, "not an IP address"),
    ("rules:\n  - name: a\n    actions:\n      - explode\n", 4, "unknown action"),
    ("rules:\n  - name: a\n    actions:\n      - {log: {}, block: {}}\n", 4, "exactly one"),
    ("rules:\n  - name: a\n    match: {severity: 7}\n    actions: [log]\n", 3, "severity"),
    ("dry_run: false\ndry_run: true\n", 2, "duplicate key"),
    ("rules:\n  - name: a\n    actions: [log\n", 4, "invalid YAML"),
    ("rules:\n  - name: a\n    actions:\n      - webhook: {url: ftp://x}\n", 4, "http"),
    ("rules:\n  - name: a\n    actions:\n      - ratelimit: {rate: fast}\n", 4, "bad rate"),
    ("limits: {default_ttl: 100, max_ttl: 10}\n", 1, "exceeds max_ttl"),
    ("rules:\n  - name: a\n    actions: []\n", 3, "at least 1"),
    # a family no alert carries would make the rule silently never match
    ("rules:\n  - name: a\n    match: {family: DDos}\n    actions: [log]\n", 3, "did you mean 'DDoS'?"),
    ("rules:\n  - name: a\n    match:\n      family: [DoS, PortScn]\n    actions: [log]\n", 4, "'PortScan'?"),
    ("rules:\n  - name: a\n    match: {family: Benign}\n    actions: [log]\n", 3, "unknown family"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), CASES)
def test_policy_errors_name_the_line(tmp_path, text, line, fragment):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}"), message
    assert fragment in message, message
    assert "\n" not in message


def test_not_a_mapping(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_policy(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")
