"""Small online statistics, river style: each learns one observation at a time (``learn_one``) and scores one
(``score_one``), in O(1) time and bounded memory.

A device's baseline is made of these; :mod:`iotguard.telemetry.detector` decides what is anomalous. Every
class can be saved to plain data (``state()``) and restored (``from_state``) so a restarted sensor keeps what
it learned.
"""

from __future__ import annotations

import bisect
import math
import random
from typing import Any


class Welford:
    """Running mean and variance (Welford's algorithm)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0

    def learn_one(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (x - self.mean)

    @property
    def std(self) -> float:
        return math.sqrt(self._m2 / (self.n - 1)) if self.n > 1 else 0.0

    def score_one(self, x: float, *, floor: float = 0.0) -> float:
        """Distance of ``x`` from the mean in standard deviations (the std floored at ``floor``)."""
        spread = max(self.std, floor)
        if spread <= 0:
            return 0.0 if x == self.mean else math.inf
        return abs(x - self.mean) / spread

    def state(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "m2": self._m2}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Welford:
        w = cls()
        w.n, w.mean, w._m2 = int(state["n"]), float(state["mean"]), float(state["m2"])
        return w


class RateBaseline:
    """Message rate: a short sliding window (the current rate) against a slow average (the usual rate).

    Time is cut into one-second buckets. ``score_one`` gives the mean rate over the last ``window`` seconds;
    ``learn_one`` folds finished seconds into an exponentially weighted average with a memory of about
    ``memory`` seconds. Seconds with no message count as zero, so a device that publishes every 30 s has a
    usual rate of 1/30 per second.
    """

    def __init__(self, window: int = 10, memory: float = 600.0) -> None:
        self.window = window
        self.alpha = 1.0 / memory
        self._ewma = 0.0
        self.seconds_learned = 0
        self._buckets = [0] * window
        self._second: int | None = None  # the second the newest bucket holds

    def _advance(self, now: float, learn: bool) -> None:
        second = int(math.floor(now))
        if self._second is None:
            self._second = second
            return
        gap = second - self._second
        if gap <= 0:
            return  # same second, or a clock step back: keep counting in the newest bucket
        if learn:
            # The finished second, then (gap - 1) empty ones, in closed form.
            self._ewma += self.alpha * (self._buckets[self._second % self.window] - self._ewma)
            self._ewma *= (1 - self.alpha) ** (gap - 1)
            self.seconds_learned += gap
        for s in range(self._second + 1, self._second + 1 + min(gap, self.window)):
            self._buckets[s % self.window] = 0
        self._second = second

    @property
    def usual(self) -> float:
        """The usual rate (messages/s): the average, corrected for starting from zero (as Adam does)."""
        if self.seconds_learned == 0:
            return 0.0
        return self._ewma / (1 - (1 - self.alpha) ** self.seconds_learned)

    def observe(self, now: float, *, learn: bool = True) -> float:
        """Count one message at ``now``; return the current rate (messages/s over the window)."""
        self._advance(now, learn)
        self._buckets[self._second % self.window] += 1  # type: ignore[operator]
        return self.score_one(now)

    def learn_one(self, now: float) -> None:
        self.observe(now, learn=True)

    def score_one(self, now: float) -> float:
        if self._second is None:
            return 0.0
        span = min(self.window, max(1, self.seconds_learned + 1))
        return sum(self._buckets) / span

    def state(self) -> dict[str, Any]:
        return {
            "ewma": self._ewma,
            "seconds": self.seconds_learned,
            "window": self.window,
            "alpha": self.alpha,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RateBaseline:
        r = cls(window=int(state["window"]), memory=1.0 / float(state["alpha"]))
        r._ewma, r.seconds_learned = float(state["ewma"]), int(state["seconds"])
        return r


class RangeBaseline:
    """Value range of one numeric field, learned from a seeded reservoir sample so that one wild value during
    learning does not stretch the range (the bounds are the 1st and 99th percentiles of the sample)."""

    def __init__(self, seed: int = 0, size: int = 256) -> None:
        self.size = size
        self.n = 0
        self.lo = math.inf
        self.hi = -math.inf
        self.sample: list[float] = []
        self.ups = 0  # learned steps up ...
        self.downs = 0  # ... and down: a counter or clock climbs nearly always
        self.changes = 0  # learned steps where the value changed
        self.last: float | None = None
        self.repeats = 0
        self._rng = random.Random(seed)

    def learn_one(self, x: float) -> None:
        self.n += 1
        # The sample is kept sorted; replacing a uniformly chosen member is still reservoir sampling.
        if len(self.sample) < self.size:
            bisect.insort(self.sample, x)
        else:
            j = self._rng.randrange(self.n)
            if j < self.size:
                del self.sample[j]
                bisect.insort(self.sample, x)
        if self.last is not None:
            self.ups += x > self.last
            self.downs += x < self.last
            self.changes += x != self.last
        self._track(x)
        self._bounds()

    def _bounds(self) -> None:
        k = len(self.sample)
        self.lo = self.sample[int(0.01 * (k - 1))]
        self.hi = self.sample[int(math.ceil(0.99 * (k - 1)))]

    def _track(self, x: float) -> None:
        self.repeats = self.repeats + 1 if x == self.last else 0
        self.last = x

    def observe(self, x: float) -> None:
        """Track repeats and trend of a value that is scored but not learned."""
        self._track(x)

    @property
    def varies(self) -> bool:
        """The value changed on at least half of the learned steps (so a long repeat is suspicious)."""
        return self.n >= 5 and self.changes >= 0.5 * (self.n - 1)

    @property
    def monotonic(self) -> bool:
        """A counter, uptime or timestamp: it climbed on (nearly) every step while learning."""
        return self.n >= 5 and self.ups >= 0.5 * (self.n - 1) and self.downs <= 0.02 * (self.n - 1)

    def score_one(self, x: float, margin: float) -> float:
        """0 inside the learned range widened by ``margin`` x its width; beyond it, how many widths out."""
        if self.n == 0:
            return 0.0
        width = max(self.hi - self.lo, 0.1 * max(abs(self.lo), abs(self.hi)), 1e-6)
        low, high = self.lo - margin * width, self.hi + margin * width
        if low <= x <= high:
            return 0.0
        return (low - x if x < low else x - high) / width + 1e-9

    def state(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "sample": self.sample,
            "ups": self.ups,
            "downs": self.downs,
            "changes": self.changes,
            "last": self.last,
            "repeats": self.repeats,
            "size": self.size,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], seed: int = 0) -> RangeBaseline:
        r = cls(seed=seed, size=int(state["size"]))
        r.sample = sorted(float(v) for v in state["sample"])[: r.size]
        r.n, r.ups, r.downs = int(state["n"]), int(state["ups"]), int(state["downs"])
        r.last = None if state["last"] is None else float(state["last"])
        r.changes, r.repeats = int(state["changes"]), int(state["repeats"])
        if r.sample:
            r._bounds()
        return r


class TopicSet:
    """The topics a device publishes on (bounded: past ``limit`` topics nothing is new any more)."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self.topics: set[str] = set()

    def learn_one(self, topic: str) -> None:
        if len(self.topics) < self.limit:
            self.topics.add(topic)

    def score_one(self, topic: str) -> float:
        """1 for a topic never used (while the set is not saturated), else 0."""
        return 0.0 if topic in self.topics or len(self.topics) >= self.limit else 1.0

    def state(self) -> dict[str, Any]:
        return {"limit": self.limit, "topics": sorted(self.topics)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TopicSet:
        t = cls(limit=int(state["limit"]))
        t.topics = set(state["topics"][: t.limit])
        return t
