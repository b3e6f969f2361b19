"""Policy files: the sample loads; every kind of mistake gives one clear line naming the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotguard.core.errors import ConfigError
from iotguard.respond.policy import check_policy, load_policy

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


def test_check_policy_needs_no_secrets_and_names_them(monkeypatch):
    """``respond check`` checks a policy where the sensor's secrets are not set: each unset ${NAME} is a
    warning naming its line, not an error (the sensor, which loads with load_policy, still refuses it)."""
    monkeypatch.delenv("IOTGUARD_WEBHOOK_TOKEN", raising=False)
    monkeypatch.delenv("IOTGUARD_MQTT_PASSWORD", raising=False)
    policy, warnings = check_policy(SAMPLE)
    assert [r.name for r in policy.rules][:2] == ["notify-everything", "contain-floods"]
    lines = SAMPLE.read_text().splitlines()
    token_line = next(i for i, t in enumerate(lines, 1) if "${IOTGUARD_WEBHOOK_TOKEN}" in t)
    password_line = next(i for i, t in enumerate(lines, 1) if "${IOTGUARD_MQTT_PASSWORD}" in t)
    assert [w.message.split(": ", 1) for w in warnings] == [
        [f"{SAMPLE}:{token_line}:11", "needed at run time: environment variable IOTGUARD_WEBHOOK_TOKEN is not set"],
        [f"{SAMPLE}:{password_line}:11", "needed at run time: environment variable IOTGUARD_MQTT_PASSWORD is not set"],
    ]  # fmt: skip
    monkeypatch.setenv("IOTGUARD_WEBHOOK_TOKEN", "t0k")
    monkeypatch.setenv("IOTGUARD_MQTT_PASSWORD", "pw")
    policy, warnings = check_policy(SAMPLE)
    assert warnings == [] and policy.rules[1].actions[1].webhook.token == "t0k"


def test_check_policy_still_refuses_a_bad_shape(tmp_path, monkeypatch):
    monkeypatch.delenv("HOOK_URL", raising=False)
    path = tmp_path / "p.yaml"
    path.write_text("rules:\n  - name: a\n    match: {family: DDos}\n    actions: [log]\n")
    with pytest.raises(ConfigError, match=r"p\.yaml:3:13 .*did you mean 'DDoS'"):
        check_policy(path)
    # a value that is only an unset variable cannot be checked: the error says why
    path.write_text("rules:\n  - name: a\n    actions:\n      - webhook: {url: '${HOOK_URL}'}\n")
    with pytest.raises(
        ConfigError, match=r":4:19 .*URL \(it is \$\{HOOK_URL\}, and HOOK_URL is not set here\)"
    ):
        check_policy(path)


def test_cli_respond_check_of_the_sample_passes_without_secrets():
    """The sample's header says "Check it with: iotguard respond check"; that must pass on a fresh machine,
    and never print a secret's value when it is set."""
    import os
    import subprocess
    import sys

    env = {
        k: v for k, v in os.environ.items() if k not in ("IOTGUARD_WEBHOOK_TOKEN", "IOTGUARD_MQTT_PASSWORD")
    }
    env["PYTHONPATH"] = str(SAMPLE.parents[2])
    run = [sys.executable, "-m", "iotguard", "respond", "check", str(SAMPLE)]
    res = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "valid" in res.stdout and "Traceback" not in res.stderr
    assert "warning:" in res.stderr and "IOTGUARD_WEBHOOK_TOKEN is not set" in res.stderr
    env.update(IOTGUARD_WEBHOOK_TOKEN="s3cr3t-t0ken", IOTGUARD_MQTT_PASSWORD="s3cr3t-pw")
    res = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
    assert "s3cr3t" not in res.stdout + res.stderr


def test_cli_respond_list_and_release_need_no_secrets(tmp_path):
    """An operator lists and lifts blocks from an admin shell where the sensor's notification secrets are
    not set: those commands read the policy for its nftables settings only."""
    import os
    import subprocess
    import sys

    env = {
        k: v for k, v in os.environ.items() if k not in ("IOTGUARD_WEBHOOK_TOKEN", "IOTGUARD_MQTT_PASSWORD")
    }
    env |= {"PYTHONPATH": str(SAMPLE.parents[2]), "IOTGUARD_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    db = tmp_path / "iotguard.db"
    base = [sys.executable, "-m", "iotguard", "respond"]
    release = [*base, "release", "192.0.2.7", "--dry-run", "--db", str(db), "--policy", str(SAMPLE)]
    res = subprocess.run(release, capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "released 192.0.2.7 (dry run" in res.stdout
    listed = [*base, "list", "--db", str(db), "--policy", str(SAMPLE), "--history", "5"]
    res = subprocess.run(listed, capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "192.0.2.7" in res.stdout and "Traceback" not in res.stderr
