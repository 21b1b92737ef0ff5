"""A ratio between two servers, with its spread over interleaved rounds, and
when a difference may be claimed.

A comparison runs its servers in rounds, A B C A B C ... (see
:func:`sockserve.measure.experiment.compare`), so a ratio between two servers
is known round by round: :class:`Spread` holds the ratio of the totals and the
lowest and highest of the rounds' ratios. A difference is claimed only when
it exceeds that noise (:meth:`Spread.direction`): every round agrees on its
direction (the spread does not cover 1.0) and it is larger than
:data:`SMALLEST` (the resolution of the clocks and CPU counters over a short
round). With a single round there is no spread to go by, and a difference
must exceed :data:`ONE_ROUND_NOISE`.

Plain data and arithmetic: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Spread", "spread_of", "times", "SMALLEST", "ONE_ROUND_NOISE"]

#: The smallest difference claimed, even when every round agrees on it.
SMALLEST = 0.05
#: With one round (no spread measured), the difference a claim needs.
ONE_ROUND_NOISE = 0.15


def times(ratio: float) -> str:
    """``"1.12x"``, ``"3.5x"``: a ratio as a lesson prints it."""
    return f"{ratio:.1f}x" if ratio >= 1.95 else f"{ratio:.2f}x"


def _bound(ratio: float) -> str:
    """A bound of a spread: like :func:`times`, with a third decimal where
    two would show a bound just off 1.0 as "1.00x" (it decides a claim)."""
    if ratio != 1.0 and f"{ratio:.2f}" == "1.00":
        return f"{ratio:.3f}x"
    return times(ratio)


@dataclass(frozen=True)
class Spread:
    """A ratio (``value``, of the totals) and the ``low`` and ``high`` of
    the same ratio in each of ``rounds`` rounds."""

    value: float
    low: float
    high: float
    rounds: int

    @property
    def covers_one(self) -> bool:
        """True when the rounds disagree on the direction (or one is even)."""
        return self.low <= 1.0 <= self.high

    def direction(self) -> int:
        """+1 (more), -1 (less) or 0 (within noise): see the module docstring."""
        if self.rounds >= 2:
            if self.low > 1.0 and self.value >= 1.0 + SMALLEST:
                return 1
            if self.high < 1.0 and self.value <= 1.0 - SMALLEST:
                return -1
            return 0
        if self.value > 1.0 + ONE_ROUND_NOISE:
            return 1
        if self.value < 1.0 - ONE_ROUND_NOISE:
            return -1
        return 0

    def range_text(self) -> str:
        """``"0.94x to 1.12x over 5 rounds"``, or ``"one round: no spread measured"``."""
        if self.rounds < 2:
            return "one round: no spread measured"
        return f"{_bound(self.low)} to {_bound(self.high)} over {self.rounds} rounds"

    def text(self) -> str:
        """``"1.31x (1.12x to 1.52x over 5 rounds)"``, or ``"within noise
        (0.94x to 1.12x over 5 rounds)"`` when no difference may be claimed."""
        if self.direction() == 0:
            return f"within noise ({self.range_text() if self.rounds >= 2 else times(self.value) + ', one round'})"
        return f"{times(self.value)} ({self.range_text()})"


def spread_of(value: float, pairs: Sequence[tuple[float | None, float | None]]) -> Spread:
    """The :class:`Spread` of *value* (the ratio of the totals) and the
    rounds' ``(numerator, denominator)`` *pairs*; a pair with a missing or
    zero figure is left out, and without any the spread is *value* alone."""
    ratios = [a / b for a, b in pairs if a is not None and b]
    if not ratios:
        return Spread(value, value, value, 1)
    return Spread(value, min(ratios), max(ratios), len(ratios))
