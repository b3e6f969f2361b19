"""Who was active recently: a bounded, time-ordered set of addresses for the many-sources rules.

The evidence gate and the incident folder both ask "have at least N distinct attackers of this family hit
this victim (or this network) within the window?". A flood from a million spoofed sources must not make that
question cost a million entries: only the N most recent members are needed to answer it, so the set keeps at
most ``cap`` of them (the least recently active go first) and forgets those idle for longer than the window.
Both keep the cost per alert constant and the memory bounded, which also keeps the garbage collector's full
passes short in a long-running sensor (it walks every entry of every container it tracks).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator


class RecentSet:
    """At most ``cap`` members, each stamped with when it was last seen, oldest first."""

    __slots__ = ("cap", "window", "_seen")

    def __init__(self, cap: int, window: float) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        self.window = window
        self._seen: OrderedDict[str, float] = OrderedDict()

    def touch(self, member: str, now: float) -> None:
        """``member`` was seen at ``now`` (a clock that never goes back: callers pass their evidence clock)."""
        seen = self._seen
        seen[member] = now
        seen.move_to_end(member)
        if len(seen) > self.cap:
            seen.popitem(last=False)
        self.prune(now)

    def prune(self, now: float) -> None:
        """Forget members idle for longer than the window."""
        seen = self._seen
        while seen and now - next(iter(seen.values())) > self.window:
            seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, member: object) -> bool:
        return member in self._seen

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._seen))
