"""Ground-truth labels for extracted flows, from an episodes file (``core/episodes.py`` format).

A flow gets the label of the first episode whose time window overlaps the flow (``ts_first <= end`` and
``ts_last >= start``) and whose attacker and victim match the flow's two endpoints in either direction;
every other flow is benign (label and category ``Benign``, ``is_attack`` 0). Matching is vectorised: each
episode is tested against the distinct addresses once, then against all flows with array operations.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from iotguard.core.episodes import Episode, read_episodes
from iotguard.core.errors import DataError
from iotguard.core.schema import BENIGN, LABEL_COLUMNS


def load_episodes(source: str | os.PathLike[str] | Sequence[Episode]) -> list[Episode]:
    """Episodes from a file path or an already-read list."""
    if isinstance(source, (str, os.PathLike)):
        return read_episodes(source)
    return list(source)


def _membership(addresses: np.ndarray, network) -> np.ndarray:
    """Boolean per distinct address string: is it inside ``network`` (None matches everything)?"""
    if network is None:
        return np.ones(addresses.shape[0], dtype=bool)
    out = np.zeros(addresses.shape[0], dtype=bool)
    for i, text in enumerate(addresses):
        try:
            out[i] = ipaddress.ip_address(text) in network
        except ValueError:
            out[i] = False
    return out


def label_flows(flows: pd.DataFrame, episodes: str | os.PathLike[str] | Sequence[Episode]) -> pd.DataFrame:
    """Return ``flows`` with ``label``, ``category`` and ``is_attack`` columns set from ``episodes``."""
    missing = [c for c in ("src_ip", "dst_ip", "ts_first", "ts_last") if c not in flows.columns]
    if missing:
        raise DataError(f"flow table lacks columns {missing}", expected="flow records from iotguard flows")
    episodes = load_episodes(episodes)
    n = len(flows)
    label = np.full(n, BENIGN, dtype=object)
    category = np.full(n, BENIGN, dtype=object)
    done = np.zeros(n, dtype=bool)
    if n and episodes:
        uniq, inverse = np.unique(
            np.concatenate(
                [flows["src_ip"].to_numpy(dtype=object), flows["dst_ip"].to_numpy(dtype=object)]
            ).astype(str),
            return_inverse=True,
        )
        src_idx, dst_idx = inverse[:n], inverse[n:]
        first = flows["ts_first"].to_numpy(dtype=np.float64)
        last = flows["ts_last"].to_numpy(dtype=np.float64)
        for ep in episodes:
            attacker, victim = ep.networks()
            in_att = _membership(uniq, attacker)
            in_vic = _membership(uniq, victim)
            ends = (in_att[src_idx] & in_vic[dst_idx]) | (in_vic[src_idx] & in_att[dst_idx])
            hit = ends & (first <= ep.end) & (last >= ep.start) & ~done
            label[hit] = ep.label
            category[hit] = ep.category
            done |= hit
    out = flows.drop(columns=[c for c in LABEL_COLUMNS if c in flows.columns])
    out["label"] = label
    out["category"] = category
    out["is_attack"] = done.astype(np.int8)
    return out
