"""The sensor configuration: YAML, then environment, then flags; errors that name the line; secrets hidden."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from iotguard.core.config import Config, load_config, parse_set_option, problems_of
from iotguard.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "iotguard.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "iotguard.yaml"
    path.write_text(text)
    return path


def test_sample_is_valid_and_documents_the_defaults():
    assert load_config(SAMPLE, env={}) == Config()


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        inner = info.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            keys += _leaf_keys(inner, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_sample_has_every_key_with_a_comment():
    lines = SAMPLE.read_text().splitlines()
    data = yaml.safe_load(SAMPLE.read_text())
    for dotted in _leaf_keys(Config):
        node = data
        for part in dotted.split("."):
            assert part in node, f"{dotted} missing from the sample config"
            node = node[part]
        leaf = dotted.split(".")[-1]
        indent = "  " * (dotted.count("."))
        index = next((i for i, line in enumerate(lines) if line.startswith(f"{indent}{leaf}:")), None)
        assert index is not None, dotted
        assert lines[index - 1].strip().startswith("#"), f"{dotted} has no comment above it"


def test_type_error_names_line_column_and_field(tmp_path):
    path = write(tmp_path, "api:\n  host: 127.0.0.1\n  port: eighty\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    assert str(exc.value).startswith(f"{path}:3:3 field 'api.port': invalid value, got 'eighty'")
    assert "expected a valid integer" in str(exc.value)


def test_unknown_key_suggests_the_right_one(tmp_path):
    path = write(tmp_path, "flows:\n  early_packet: 5\n")
    with pytest.raises(
        ConfigError,
        match=r":2:3 field 'flows.early_packet': unknown key 'early_packet' \(did you mean 'early_packets'\?\)",
    ):
        load_config(path, env={})


def test_every_problem_is_listed_with_its_line(tmp_path):
    path = write(
        tmp_path,
        "telemetry:\n  url: ftp://broker\ninventory:\n  networks:\n    - 10.0.0.0/8\n    - 10.0.0.999/8\n"
        "devices:\n  - name: cam\n    criticality: extreme\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    messages = [p.message for p in problems_of(exc.value)]
    assert messages == [
        f"{path}:2:3 field 'telemetry.url': telemetry.url scheme 'ftp' is not mqtt:// or mqtts://",
        f"{path}:6:7 field 'inventory.networks.1': '10.0.0.999/8' is not an IP address or CIDR network",
        f"{path}:9:5 field 'devices.0.criticality': invalid value, got 'extreme'"
        " (expected 'low', 'normal' or 'high')",
    ]
    with pytest.raises(ConfigError, match=r":2:5 field 'devices.0': a device needs an address"):
        load_config(write(tmp_path, "devices:\n  - name: cam\n"), env={})


def test_yaml_syntax_duplicate_keys_and_shape(tmp_path):
    with pytest.raises(ConfigError, match=r":3:1: invalid YAML"):
        load_config(write(tmp_path, "api:\n  port: [1\n"), env={})
    with pytest.raises(ConfigError, match=r":3:3: duplicate key 'port'"):
        load_config(write(tmp_path, "api:\n  port: 1\n  port: 2\n"), env={})
    with pytest.raises(ConfigError, match=r"top level is a list"):
        load_config(write(tmp_path, "- a\n- b\n"), env={})
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "absent.yaml", env={})
    assert load_config(write(tmp_path, "# nothing but a comment\n"), env={}) == Config()


def test_yaml_then_environment_then_flags(tmp_path):
    path = write(tmp_path, "api:\n  port: 9000\n  max_page_size: 50\ntelemetry:\n  topics: [a/#]\n")
    env = {
        "IOTGUARD_API__PORT": "9100",
        "IOTGUARD_TELEMETRY__TOPICS": "[sensors/#, plugs/+/state]",
        "IOTGUARD_HOME": "/tmp/x",  # not a config key: ignored
        "IOTGUARD_DATA_DIR": "/tmp/y",
    }
    cfg = load_config(path, env=env, overrides={"api.port": "9200", "capture.interface": "eth1"})
    assert cfg.api.port == 9200
    assert cfg.api.max_page_size == 50
    assert cfg.telemetry.topics == ["sensors/#", "plugs/+/state"]
    assert cfg.capture.interface == "eth1"
    assert load_config(path, env=env).api.port == 9100
    assert load_config(env={"IOTGUARD_CONFIG": str(path)}).api.port == 9000


def test_environment_and_flag_errors_name_their_source():
    with pytest.raises(ConfigError, match=r"^environment IOTGUARD_API__PORT: invalid value, got 'x'"):
        load_config(env={"IOTGUARD_API__PORT": "x"})
    with pytest.raises(ConfigError, match=r"^environment IOTGUARD_NOPE__X: unknown configuration section"):
        load_config(env={"IOTGUARD_NOPE__X": "1"})
    with pytest.raises(ConfigError, match=r"^flag --interface: .*give either"):
        load_config(
            env={},
            overrides={"capture.interface": "eth0", "capture.pcap": "x.pcap"},
            flag_names={"capture.interface": "--interface", "capture.pcap": "--pcap"},
        )
    with pytest.raises(ConfigError, match=r"^flag --set api.bogus: unknown key 'bogus'"):
        load_config(env={}, overrides=dict([parse_set_option("api.bogus=1")]))
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_set_option("no-equals-sign")


def test_secrets_are_redacted_everywhere(tmp_path):
    path = write(tmp_path, "telemetry:\n  url: mqtts://sensor:hunter2@broker.lan\n")
    cfg = load_config(path, env={"IOTGUARD_API__TOKEN": "tok-123456"})
    assert cfg.telemetry.host == "broker.lan" and cfg.telemetry.port == 8883 and cfg.telemetry.tls
    assert cfg.telemetry.username == "sensor"
    assert cfg.telemetry.password.get_secret_value() == "hunter2"
    assert cfg.telemetry.url == "mqtts://broker.lan:8883"
    shown = yaml.safe_dump(cfg.redacted()) + repr(cfg) + str(cfg)
    assert "hunter2" not in shown and "tok-123456" not in shown
    assert cfg.redacted()["telemetry"]["password"] == "**********"


def test_api_binds_to_loopback_by_default():
    cfg = Config()
    assert cfg.api.host == "127.0.0.1"
    assert load_config(env={"IOTGUARD_API__HOST": "localhost"}).api.host == "127.0.0.1"
    with pytest.raises(ConfigError, match="not an IP address to bind"):
        load_config(env={"IOTGUARD_API__HOST": "my host"})


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "iotguard", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})},
        timeout=60,
    )


def test_cli_config_check_and_show(tmp_path):
    ok = run_cli("config", "check", str(SAMPLE))
    assert ok.returncode == 0 and "configuration is valid" in ok.stdout
    bad = write(tmp_path, "api:\n  port: 99999\n  hots: x\n")
    res = run_cli("config", "check", str(bad))
    assert res.returncode == 2
    assert f"{bad}:2:3 field 'api.port'" in res.stderr and f"{bad}:3:3 field 'api.hots'" in res.stderr
    assert "Traceback" not in res.stderr
    shown = run_cli(
        "config", "show", "--set", "api.port=9001", env={"IOTGUARD_TELEMETRY__PASSWORD": "s3cr3t-pw"}
    )
    assert shown.returncode == 0, shown.stderr
    data = yaml.safe_load(shown.stdout)
    assert data["api"]["port"] == 9001 and data["telemetry"]["password"] == "**********"
    assert "s3cr3t-pw" not in shown.stdout + shown.stderr
