"""Ground-truth labels for extracted flows, from an episodes file (``core/episodes.py`` format).

A flow gets the label of the first episode whose time window overlaps the flow (``ts_first <= end`` and
``ts_last >= start``) and whose attacker and victim match the flow's two endpoints in either direction;
every other flow is benign (label and category ``Benign``, ``is_attack`` 0). Matching is vectorised: the distinct
addresses are parsed once into integers, each episode's networks are tested against them with masks, and
the result is spread over all flows with array operations.
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


_PARSED: dict[str, tuple[int, int, int]] = {}


def _parse(addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct address strings -> (IP version, high 64 bits, low 64 bits); version 0 if unparseable."""
    ver = np.zeros(addresses.shape[0], dtype=np.int8)
    hi = np.zeros(addresses.shape[0], dtype=np.uint64)
    lo = np.zeros(addresses.shape[0], dtype=np.uint64)
    for i, text in enumerate(addresses.tolist()):
        parsed = _PARSED.get(text)
        if parsed is None:
            try:
                ip = ipaddress.ip_address(text)
                parsed = (ip.version, int(ip) >> 64, int(ip) & 0xFFFFFFFFFFFFFFFF)
            except ValueError:
                parsed = (0, 0, 0)
            if len(_PARSED) >= 65536:
                _PARSED.clear()
            _PARSED[text] = parsed
        ver[i], hi[i], lo[i] = parsed
    return ver, hi, lo


def _membership(parsed: tuple[np.ndarray, np.ndarray, np.ndarray], network) -> np.ndarray:
    """Boolean per distinct address: is it inside ``network`` (None matches everything)?"""
    ver, hi, lo = parsed
    if network is None:
        return np.ones(ver.shape[0], dtype=bool)
    bits = network.max_prefixlen
    mask = ((1 << bits) - 1) ^ ((1 << (bits - network.prefixlen)) - 1)
    base = int(network.network_address)
    if network.version == 4:
        return (ver == 4) & ((lo & np.uint64(mask)) == np.uint64(base))
    m_hi, m_lo = np.uint64(mask >> 64), np.uint64(mask & 0xFFFFFFFFFFFFFFFF)
    b_hi, b_lo = np.uint64(base >> 64), np.uint64(base & 0xFFFFFFFFFFFFFFFF)
    return (ver == 6) & ((hi & m_hi) == b_hi) & ((lo & m_lo) == b_lo)


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
        parsed = _parse(uniq)
        for ep in episodes:
            attacker, victim = ep.networks()
            in_att = _membership(parsed, attacker)
            in_vic = _membership(parsed, victim)
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
