"""Ground truth agrees with the traffic: every episode has packets between its attacker and victim, no benign
packet could be claimed by an episode, and attack-only hosts send nothing benign."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from iotguard.lab import SCENARIOS, build
from iotguard.lab.verify import endpoints, label_problems


@pytest.mark.parametrize("scenario", [name for name, s in SCENARIOS.items() if s.attacks])
def test_labels_agree_with_traffic(scenario):
    built = build(scenario, duration=90)
    assert built.episodes, "every attack scenario yields episodes"
    assert label_problems(built) == []
    labels = {e.label for e in built.episodes}
    for plan in built.scenario.attacks:
        if plan.kind != "mirai":
            continue
        assert {"mirai-scan", "telnet-bruteforce", "mirai-cnc"} <= labels


def test_every_tag_is_a_registered_episode():
    built = build("showcase", duration=60)
    used = set(np.unique(built.packets.tags).tolist()) - {0}
    assert used == set(built.tags)


def test_verifier_catches_mislabelled_ground_truth():
    built = build("showcase", duration=60)
    # an episode whose victim is "anyone" would claim the bot's benign traffic too
    bot = next(e for e in built.episodes if e.label == "mirai-cnc")
    wrong = dataclasses.replace(bot, victim="*")
    broken = dataclasses.replace(built, episodes=[wrong if e is bot else e for e in built.episodes])
    problems = label_problems(broken)
    assert any("would claim" in p for p in problems)
    # and a victim the attack never touched leaves its packets unexplained
    wrong = dataclasses.replace(bot, victim="192.0.2.1")
    broken = dataclasses.replace(built, episodes=[wrong if e is bot else e for e in built.episodes])
    assert any("between other hosts" in p for p in label_problems(broken))


def test_arp_spoofing_has_arp_frames_only():
    built = build("showcase", duration=60)
    _, _, is_ip = endpoints(built.packets)
    spoof = {tag for tag, e in zip(built.tags, built.episodes, strict=True) if e.category == "Spoofing"}
    mask = np.isin(built.packets.tags, list(spoof))
    assert mask.sum() > 10 and not is_ip[mask].any()
