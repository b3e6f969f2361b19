"""The alert threshold's optional confidence bound (``fpr_confidence``): how many benign calibration scores may
alert so that the true FPR on new benign flows exceeds the target with probability at most 1 - confidence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from iotguard.core.errors import ConfigError
from iotguard.models.pipeline import (
    allowed_alerts,
    choose_threshold,
    encode_labels,
    fpr_threshold,
    stratified_split,
    train_model,
)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 50_000),
    target=st.floats(0.001, 0.2),
    confidence=st.floats(0.5, 0.999),
)
def test_allowed_alerts_is_the_largest_count_within_the_binomial_bound(n, target, confidence):
    a = allowed_alerts(n, target, confidence)
    delta = 1.0 - confidence
    assert 0 <= a <= allowed_alerts(n, target) == int(np.floor(target * n))
    if binom.cdf(0, n, target) <= delta:
        assert binom.cdf(a, n, target) <= delta * (1 + 1e-9)
    else:
        assert a == 0  # even no alert at all cannot reach the confidence: the highest score
    if a + 1 <= np.floor(target * n):
        assert binom.cdf(a + 1, n, target) > delta * (1 - 1e-9)
    assert allowed_alerts(n, target, min(0.9999, confidence + 0.0005)) <= a  # more confidence, fewer alerts


def test_known_values():
    assert allowed_alerts(3500, 0.01) == 35
    assert allowed_alerts(3500, 0.01, 0.95) == 25
    assert allowed_alerts(700, 0.01, 0.95) == 2
    assert allowed_alerts(100, 0.01, 0.95) == 0
    assert allowed_alerts(1_000_000, 0.01, 0.95) == 9_836  # mean 10,000, sd 99.5: about 1.645 sd lower


def test_the_bound_holds_on_new_benign_scores_and_the_plain_rule_does_not():
    """Scores U(0, 1): a threshold t has true FPR 1 - t. Over 2,000 calibration sets of 1,000 scores, the true
    FPR exceeds 1 % in at most about 10 % of them at confidence 0.9; the plain rule exceeds it in about 58 %
    (P(Binomial(1000, 0.01) <= 10))."""
    rng = np.random.default_rng(0)
    sets = rng.random((2000, 1000)).astype(np.float32)
    bound = np.array([1.0 - fpr_threshold(s, 0.01, 0.9)[0] for s in sets])
    plain = np.array([1.0 - fpr_threshold(s, 0.01)[0] for s in sets])
    assert np.mean(bound > 0.01) <= 0.1 + 0.02  # 3 standard errors of a 2,000-trial share
    assert 0.5 < np.mean(plain > 0.01) < 0.66
    assert np.mean(plain) > 0.01 > np.mean(bound)  # the plain rule's true FPR is above the target on average
    assert (bound <= plain + 1e-7).all()


def test_train_model_applies_it_to_the_pooled_benign_scores():
    rng = np.random.default_rng(0)
    import pandas as pd

    X = pd.DataFrame(rng.normal(size=(3000, 4)), columns=list("abcd"))
    y = np.r_[np.zeros(2800, int), np.ones(200, int)]
    X.iloc[2800:] += 4.0
    plain = train_model("knn", X, y, seed=0, params={"k": 1, "scaling": "standard"})
    sure = train_model("knn", X, y, seed=0, params={"k": 1, "scaling": "standard"}, fpr_confidence=0.95)
    _, val = stratified_split(encode_labels(y, "binary"), 0.2, 0)
    benign_val = plain.transform(X.iloc[val][y[val] == 0])
    pooled = np.concatenate([sure.model.attack_score(benign_val), sure.model.calibration_scores_])
    info = sure.threshold_info
    assert info["fpr_confidence"] == 0.95 and info["allowed_benign_alerts"] == allowed_alerts(
        len(pooled), 0.01, 0.95
    )
    assert info["achieved_confidence"] >= 0.95
    assert sure.threshold == fpr_threshold(pooled, 0.01, 0.95)[0] > plain.threshold
    assert "fpr_confidence" not in plain.threshold_info


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1])
def test_a_confidence_outside_0_1_is_a_clear_error(confidence):
    with pytest.raises(ConfigError, match="probability in"):
        allowed_alerts(100, 0.01, confidence)
    with pytest.raises(ConfigError, match="FPR confidence"):
        train_model(
            "knn", __import__("pandas").DataFrame({"a": [0.0, 1.0]}), [0, 0], fpr_confidence=confidence
        )


def test_the_bound_is_not_claimed_when_the_threshold_falls_back_below_it():
    """No validation attack reaches the bound's threshold: the threshold moves down to the top attack score,
    and the manifest must not claim a confidence that threshold does not have."""
    benign = np.linspace(0.0, 1.0, 1000)
    attacks = np.array([0.5, 0.6])
    kept = choose_threshold(benign, np.array([5.0]), 0.01, 0.95)
    assert kept["allowed_benign_alerts"] == allowed_alerts(1000, 0.01, 0.95) and "target_met" not in kept
    moved = choose_threshold(benign, attacks, 0.01, 0.95)
    assert moved["target_met"] is False and moved["value"] <= 0.6
    assert "allowed_benign_alerts" not in moved and "achieved_confidence" not in moved
    assert moved["fpr_confidence"] == 0.95
