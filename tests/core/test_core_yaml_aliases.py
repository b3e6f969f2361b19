"""YAML aliases are refused by the shared reader: an alias bomb ("billion laughs") fails at once, by line."""

from __future__ import annotations

import resource
import time

import pytest

from iotguard.core.config import load_config
from iotguard.core.errors import ConfigError
from iotguard.core.yamlfile import load_yaml
from iotguard.respond.policy import load_policy


def bomb(levels: int = 9) -> str:
    """Ten times more nodes per level: 10**levels strings once expanded (10**9 is what a reviewer ran)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ndetect:\n  suppress: *a{levels - 1}\n"


def test_alias_bomb_is_refused_quickly_and_names_the_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    # The old reader expanded it and grew to gigabytes; refusing takes a blink and no memory.
    assert time.monotonic() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB
    assert str(exc.value).startswith(f"{path}:2:10: YAML alias *a0 is not supported")
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match=r"bomb\.yaml:2:10: YAML alias \*a0"):
        load_policy(path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("base: &b {port: 1}\napi:\n  <<: *b\n", ":3:7:"),  # merge key
        ("allowlist: &n [10.0.0.1]\nrespond:\n  allowlist: *n\n", ":3:14:"),
    ],
)
def test_any_alias_is_refused(tmp_path, text, where):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="alias") as exc:
        load_yaml(path)
    assert where in str(exc.value)


def test_anchor_without_alias_and_plain_files_still_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("api: &a\n  port: 9000\n")
    assert load_config(path, env={}).api.port == 9000


def test_alias_in_an_environment_value_is_not_expanded():
    with pytest.raises(ConfigError, match="environment IOTGUARD_DETECT__SUPPRESS: invalid value"):
        load_config(env={"IOTGUARD_DETECT__SUPPRESS": "[&a {family: DoS}, *a]"})
