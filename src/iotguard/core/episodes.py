"""Ground truth for captures: attack episodes, and the rules file that turns them into flow labels.

An episode says "from ``start`` to ``end``, ``attacker`` attacked ``victim`` with ``label`` (family
``category``)". The lab writes one for every attack it generates; operators write them for their own
captures. A flow is labelled with the first episode whose time window overlaps the flow and whose attacker and
victim match the flow's two endpoints in either direction; every other flow is benign.

File format: CSV with the header ``start,end,attacker,victim,label,category``. ``start`` and ``end`` are epoch
seconds or ISO-8601 timestamps (UTC unless an offset is given). ``attacker`` and ``victim`` are an address, a
CIDR network, or ``*`` for any. Blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import csv
import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path

from iotguard.core.errors import DataError, location

HEADER = ("start", "end", "attacker", "victim", "label", "category")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Episode:
    start: float
    end: float
    attacker: str
    victim: str
    label: str
    category: str

    def networks(self) -> tuple[Network | None, Network | None]:
        """Attacker and victim as networks (``None`` for ``*``)."""
        return _network(self.attacker), _network(self.victim)


def _network(text: str) -> Network | None:
    return None if text == "*" else ipaddress.ip_network(text, strict=False)


def _time(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite time")
    return value


def read_episodes(path: str | PathLike[str]) -> list[Episode]:
    """Read an episodes CSV; a malformed row raises :class:`DataError` naming the line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read episodes file: {exc}", where=str(path)) from exc
    lines = [
        (n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise DataError("episodes file is empty", where=str(path), expected="a header " + ",".join(HEADER))
    header_no, header_line = lines[0]
    header = [h.strip() for h in next(csv.reader([header_line]))]
    if header != list(HEADER):
        raise DataError(
            f"unexpected header {header}", where=location(path, line=header_no), expected=",".join(HEADER)
        )
    episodes = []
    for line_no, line in lines[1:]:
        row = [c.strip() for c in next(csv.reader([line]))]
        if len(row) != len(HEADER):
            raise DataError(
                f"{len(row)} fields", where=location(path, line=line_no), expected=f"{len(HEADER)} fields"
            )
        fields = dict(zip(HEADER, row, strict=True))
        for name in ("start", "end"):
            try:
                fields[name] = _time(fields[name])
            except ValueError as exc:
                raise DataError(
                    f"bad time {row[HEADER.index(name)]!r}",
                    where=location(path, line=line_no, column=name),
                    expected="epoch seconds or ISO-8601",
                ) from exc
        for name in ("attacker", "victim"):
            try:
                _network(fields[name])
            except ValueError as exc:
                raise DataError(
                    f"bad address {fields[name]!r}",
                    where=location(path, line=line_no, column=name),
                    expected="an IP address, a CIDR network or *",
                ) from exc
        if fields["end"] < fields["start"]:
            raise DataError("episode ends before it starts", where=location(path, line=line_no, column="end"))
        if not fields["label"] or not fields["category"]:
            raise DataError("empty label or category", where=location(path, line=line_no))
        episodes.append(Episode(**fields))
    return episodes


def write_episodes(path: str | PathLike[str], episodes: list[Episode]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for e in episodes:
            writer.writerow(
                [repr(float(e.start)), repr(float(e.end)), e.attacker, e.victim, e.label, e.category]
            )
