"""A small log-bucketed latency histogram: plain data, no IO, no threads.

Values are durations in seconds. Buckets grow geometrically, eight per
doubling, so any recorded value is reported within about 9% of its true size
from one microsecond to well over an hour, in a few hundred integers. The
exact minimum, maximum and sum are kept beside the buckets. Histograms merge
(the load generator's worker processes each keep one) and round-trip through
JSON with :meth:`Histogram.to_dict` / :meth:`Histogram.from_dict`.

Thread safety: none. The owner (``ServerStats``, a load worker) serializes
access.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import Counter
from collections.abc import Iterable, Iterator

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Histogram", "PERCENTILES"]

#: The percentiles every summary reports, as (label, fraction).
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p999", 0.999),
)

_SMALLEST = 1e-6  # values below one microsecond share bucket 0
_STEPS_PER_DOUBLING = 8
_BUCKETS = 8 * 40  # 1 us * 2**40 is about 12.7 days: enough for any request
#: Upper edge of each bucket but the last (which has none): bucket i holds
#: the values v with _EDGES[i-1] < v <= _EDGES[i].
_EDGES: tuple[float, ...] = tuple(
    _SMALLEST * 2.0 ** (i / _STEPS_PER_DOUBLING) for i in range(_BUCKETS - 1)
)
_bucket_index = functools.partial(bisect.bisect_left, _EDGES)


class Histogram:
    """Counts of durations in geometric buckets, with exact min/max/sum.

    Use ``record(seconds)`` to add, ``percentile(0.99)`` to read, ``merge``
    to combine, ``to_dict``/``from_dict`` to store.
    """

    __slots__ = ("_counts", "count", "total", "min", "max")

    def __init__(self) -> None:
        self._counts: list[int] = [0] * _BUCKETS
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    @staticmethod
    def bucket_upper(index: int) -> float:
        """The largest duration bucket *index* holds (its upper edge)."""
        return float(_SMALLEST * 2.0 ** (index / _STEPS_PER_DOUBLING))

    def add(self, seconds: float) -> None:
        """Add one duration already known to be a number >= 0.

        The fast path for the servers' statistics: no validation."""
        self._counts[_bucket_index(seconds)] += 1
        self.count += 1
        self.total += seconds
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def add_many(self, values: list[float]) -> None:
        """Add many durations already known to be numbers >= 0.

        The statistics fold their queued handler times through here: the
        bucketing and the sums run in C (``map``, ``bisect``, ``Counter``)."""
        if not values:
            return
        counts = self._counts
        for index, n in Counter(map(_bucket_index, values)).items():
            counts[index] += n
        self.count += len(values)
        self.total += sum(values)
        low, high = min(values), max(values)
        if low < self.min:
            self.min = low
        if high > self.max:
            self.max = high

    def record(self, seconds: float, times: int = 1) -> None:
        """Add one duration (or *times* equal ones)."""
        if seconds < 0 or math.isnan(seconds):
            raise ValueError(f"a duration cannot be negative or NaN: {seconds!r}")
        self._counts[_bucket_index(seconds)] += times
        self.count += times
        self.total += seconds * times
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: Histogram) -> None:
        """Add every value of *other* to this histogram."""
        counts = self._counts
        for index, n in enumerate(other._counts):
            if n:
                counts[index] += n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    @property
    def mean(self) -> float:
        """The exact average, or 0.0 when empty."""
        return self.total / self.count if self.count else 0.0

    def percentile(self, fraction: float) -> float:
        """The duration below which *fraction* (0..1) of the values fall.

        Reported as the upper edge of the bucket that holds that rank,
        clamped to the exact min and max; 0.0 when the histogram is empty.
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be between 0 and 1, got {fraction!r}")
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(fraction * self.count))
        if rank == 1:
            return self.min  # the smallest and largest values are known exactly
        if rank >= self.count:
            return self.max
        seen = 0
        for index, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                return min(max(self.bucket_upper(index), self.min), self.max)
        return self.max

    def summary_ms(self) -> dict[str, float]:
        """p50/p90/p99/p999/max and mean in milliseconds (JSON-able)."""
        out = {label: self.percentile(q) * 1000.0 for label, q in PERCENTILES}
        out["max"] = self.max * 1000.0 if self.count else 0.0
        out["mean"] = self.mean * 1000.0
        return out

    def buckets(self) -> Iterator[tuple[float, int]]:
        """(upper edge in seconds, count) for each non-empty bucket, in order."""
        for index, n in enumerate(self._counts):
            if n:
                yield self.bucket_upper(index), n

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy; :meth:`from_dict` reverses it."""
        return {
            "count": self.count,
            "total": self.total,
            "min": self.min if self.count else None,
            "max": self.max,
            "buckets": {str(i): n for i, n in enumerate(self._counts) if n},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        """Rebuild a histogram saved by :meth:`to_dict`."""
        hist = cls()
        for i, n in data.get("buckets", {}).items():
            hist._counts[min(max(int(i), 0), _BUCKETS - 1)] += int(n)
        hist.count = int(data["count"])
        hist.total = float(data["total"])
        hist.min = math.inf if data.get("min") is None else float(data["min"])
        hist.max = float(data["max"])
        return hist

    @classmethod
    def of(cls, values: Iterable[float]) -> Histogram:
        """A histogram of the given durations."""
        hist = cls()
        for value in values:
            hist.record(value)
        return hist

    def copy(self) -> Histogram:
        """An independent copy."""
        clone = Histogram()
        clone.merge(self)
        return clone

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        if not self.count:
            return "Histogram(empty)"
        s = self.summary_ms()
        return f"Histogram(n={self.count}, p50={s['p50']:.3f}ms, p99={s['p99']:.3f}ms, max={s['max']:.3f}ms)"
