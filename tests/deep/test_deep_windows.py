"""Windows of recent flows per host: right rows, right order, and never a flow from the future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotguard.models.deep.windows import WindowBuffer, build_windows, gather_windows, order_time, window_index


def brute_force(host, time, k):
    """The definition, row by row: earlier-or-equal (time, row) rows of the same host, the k most recent."""
    n = len(time)
    out = np.full((n, k), -1, dtype=np.int64)
    for i in range(n):
        past = [j for j in range(n) if host[j] == host[i] and (time[j], j) <= (time[i], i)]
        past.sort(key=lambda j: (time[j], j))
        take = past[-k:]
        out[i, k - len(take) :] = take
    return out


tables = st.integers(min_value=0, max_value=60).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=n, max_size=n),
        # few distinct times, so ties are common
        st.lists(st.integers(min_value=0, max_value=8).map(float), min_size=n, max_size=n),
        st.integers(min_value=1, max_value=6),
    )
)


@settings(max_examples=150, deadline=None)
@given(tables)
def test_window_index_matches_the_definition(table):
    host, time, k = table
    index = window_index(host, np.array(time), k)
    assert index.shape == (len(time), k)
    np.testing.assert_array_equal(index, brute_force(host, time, k))


@settings(max_examples=150, deadline=None)
@given(tables)
def test_window_never_holds_a_later_flow(table):
    host, time, k = table
    index = window_index(host, np.array(time), k)
    for i, row in enumerate(index):
        assert row[-1] == i  # the scored flow is last
        members = row[row >= 0]
        assert all(host[j] == host[i] for j in members)
        assert all((time[j], j) <= (time[i], i) for j in members)  # nothing later than the scored flow
        keys = [(time[j], j) for j in members]
        assert keys == sorted(keys)  # oldest first
        assert (row[: k - len(members)] == -1).all()  # padding only at the start


@settings(max_examples=100, deadline=None)
@given(tables, st.integers(min_value=1, max_value=7))
def test_stream_buffer_equals_table_windows(table, batch):
    """The sensor's buffer, fed in arrival order and in batches, gives the same windows as the whole table."""
    host, time, k = table
    n = len(time)
    order = np.lexsort((np.arange(n), np.array(time)))  # arrival order
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3) + 1
    expected = build_windows(X, host, np.array(time), k)
    buffer = WindowBuffer(k, 3, pad=0.0)
    got = np.empty_like(expected)
    for start in range(0, n, batch):
        rows = order[start : start + batch]
        got[rows] = buffer.windows([host[i] for i in rows], X[rows])
    np.testing.assert_array_equal(got, expected)


def test_build_windows_pads_with_zeros_at_the_start():
    X = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    windows = build_windows(X, ["h", "h", "g"], np.array([10.0, 11.0, 10.5]), k=3)
    np.testing.assert_array_equal(windows[:, :, 0], [[0, 0, 1], [0, 1, 2], [0, 0, 3]])


def test_scores_of_earlier_flows_do_not_change_when_later_flows_arrive():
    """End to end through a trained window model: appending future flows leaves past windows untouched."""
    from iotguard.models.deep.classifier import DeepClassifier

    rng = np.random.default_rng(0)
    n, k = 600, 4
    host = rng.choice(["10.0.0.1", "10.0.0.2", "10.0.0.3"], n)
    time = np.sort(rng.random(n) * 100)
    X = rng.random((n, 5), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(int)
    model = DeepClassifier("lstm_window", k=k, epochs=2, seed=1).fit(build_windows(X, host, time, k), y)
    head = 400
    early = model.attack_score(build_windows(X[:head], host[:head], time[:head], k))
    full = model.attack_score(build_windows(X, host, time, k))[:head]
    np.testing.assert_array_equal(early, full)


def test_buffer_forgets_least_recent_hosts():
    buffer = WindowBuffer(k=2, n_features=1, max_hosts=2, pad=0.0)
    buffer.windows(["a", "b"], np.array([[1.0], [2.0]]))
    buffer.windows(["c"], np.array([[3.0]]))
    assert len(buffer) == 2
    # "a" was dropped, so its next window starts again from padding
    np.testing.assert_array_equal(buffer.windows(["a"], np.array([[4.0]]))[0, :, 0], [0.0, 4.0])


def test_buffer_rejects_wrong_width():
    buffer = WindowBuffer(k=2, n_features=3)
    with pytest.raises(ValueError, match="features"):
        buffer.windows(["a"], np.zeros((1, 4)))


def test_missing_times_are_refused():
    with pytest.raises(ValueError, match="missing"):
        window_index(["a", "b"], np.array([1.0, np.nan]), 2)


def test_order_time_prefers_the_end_of_the_flow():
    frame = pd.DataFrame({"ts_first": [1.0, 2.0], "ts_last": [5.0, 3.0]})
    np.testing.assert_array_equal(order_time(frame), [5.0, 3.0])
    assert order_time(frame[["ts_first"]]).tolist() == [1.0, 2.0]
    cic = pd.DataFrame({"ts_first": [1.0, 2.0], "flow_duration": [3e6, np.nan]})  # microseconds
    assert order_time(cic).tolist() == [4.0, 2.0]
    zeek = pd.DataFrame({"ts_first": [1.0, 2.0], "duration": [0.5, np.nan]})  # seconds
    assert order_time(zeek).tolist() == [1.5, 2.0]
    assert order_time(pd.DataFrame({"x": [1]})) is None


def test_gather_uses_the_pad_value():
    X = np.ones((2, 2), dtype=np.float32)
    out = gather_windows(X, np.array([[-1, 0], [0, 1]]), pad=np.nan)
    assert np.isnan(out[0, 0]).all() and (out[0, 1] == 1).all() and (out[1] == 1).all()
