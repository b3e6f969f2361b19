"""Balancing the training rows: a capped attack family keeps an equal share of each finer label (stratum), so
a rare kind of flood is not sampled away among thousands of flows of another kind; benign rows all stay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iotguard.core.errors import DataError
from iotguard.detect.build import _balance, build_detector


def _rows(counts: dict[tuple[str, str], int]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    family, stratum = [], []
    for (fam, label), n in counts.items():
        family += [fam] * n
        stratum += [label] * n
    x = pd.DataFrame({"f": np.arange(len(family), dtype=float)})  # every row distinct
    return x, np.array(family), np.array(stratum)


def test_a_capped_family_keeps_its_rare_strata_and_splits_the_rest():
    x, family, stratum = _rows(
        {("Benign", "Benign"): 900, ("DDoS", "udp-flood"): 30, ("DDoS", "http-flood"): 200,
         ("DDoS", "syn-flood"): 4000, ("DDoS", "ack-flood"): 6000, ("PortScan", "syn-scan"): 50}
    )  # fmt: skip
    keep = _balance(x, family, 1000, seed=0, strata=stratum)
    kept = pd.Series(stratum[keep]).value_counts()
    assert kept["Benign"] == 900 and kept["syn-scan"] == 50  # uncapped: everything
    assert kept["udp-flood"] == 30 and kept["http-flood"] == 200  # fewer than their share: all of them
    assert kept["syn-flood"] == kept["ack-flood"] == (1000 - 230) // 2
    # without strata the same cap samples the family as a whole: the UDP floods nearly vanish
    plain = pd.Series(stratum[_balance(x, family, 1000, seed=0)]).value_counts()
    assert (family[_balance(x, family, 1000, seed=0)] == "DDoS").sum() == 1000 and plain["udp-flood"] < 10


def test_a_cap_below_the_number_of_strata_keeps_the_rarest():
    x, family, stratum = _rows(
        {("DDoS", "udp-flood"): 1, ("DDoS", "http-flood"): 2, ("DDoS", "syn-flood"): 97}
    )
    kept = pd.Series(stratum[_balance(x, family, 2, seed=0, strata=stratum)]).value_counts()
    assert kept.sum() == 2 and kept["udp-flood"] == 1 and kept["http-flood"] == 1


def test_strata_must_match_the_rows(tmp_path):
    x, family, stratum = _rows({("Benign", "Benign"): 20, ("DDoS", "udp-flood"): 20})
    with pytest.raises(DataError, match="strata"):
        build_detector(x, family, tmp_path, features=["f"], strata=stratum[:-1])
