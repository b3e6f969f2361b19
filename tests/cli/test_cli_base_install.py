"""A base install (no `train` extra): commands that would build the default detector say what to install or
pass, in one line, before generating any lab traffic; a prebuilt detector needs none of it."""

from __future__ import annotations

import sys

import pytest

from cli_run import run


@pytest.fixture
def no_sklearn(tmp_path, monkeypatch):
    """scikit-learn uninstalled (an import of it fails), an empty state directory (no cached default
    detector), and lab traffic generation made to fail loudly: the check must come before it."""
    import iotguard.detect.default as default

    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setenv("IOTGUARD_HOME", str(tmp_path / "home"))

    def lab_flows(*args, **kwargs):
        raise AssertionError("lab traffic generated before the training dependencies were checked")

    monkeypatch.setattr(default, "lab_flows", lab_flows)


@pytest.fixture
def table(tmp_path):
    import numpy as np
    import pandas as pd

    from iotguard.core.schema import FLOW_FEATURES, IDENTITY_COLUMNS

    columns = list(dict.fromkeys((*IDENTITY_COLUMNS, *FLOW_FEATURES)))
    frame = pd.DataFrame(np.ones((30, len(columns))), columns=columns)
    path = tmp_path / "flows.csv"
    frame.to_csv(path, index=False)
    return path


EXPECTED = (
    "error: building the default detector needs sklearn, which this install lacks "
    "(expected pip install 'iotguard[train]', or --model DIR: a prebuilt detector)"
)


@pytest.mark.parametrize(
    "args",
    [
        ["detect", "{table}"],
        ["detect", "{table}", "--baseline", "{table}"],
        ["baseline", "{table}", "--out", "{tmp}/site"],
    ],
)
def test_the_default_detector_needs_the_train_extra(args, no_sklearn, table, tmp_path, capsys, monkeypatch):
    args = [a.format(table=table, tmp=tmp_path) for a in args]
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 2, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [EXPECTED]
    assert not (tmp_path / "site").exists()


def test_the_sensor_says_the_same(no_sklearn):
    from iotguard.core.errors import ConfigError
    from iotguard.detect.default import default_detector

    # `iotguard run` without --model builds the detector through default_detector, as detect does
    with pytest.raises(ConfigError, match=r"needs sklearn.*iotguard\[train\].*--model DIR"):
        default_detector()


def test_with_the_extra_nothing_is_missing():
    from iotguard.detect.default import require_training_modules

    require_training_modules()  # the dev environment has the train extra
