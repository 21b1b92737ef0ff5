"""The latency histogram: accuracy, percentiles, merging and JSON round trips."""

from __future__ import annotations

import json
import math
import random

import pytest

from sockserve.core.histogram import Histogram


def test_empty() -> None:
    h = Histogram()
    assert h.count == 0
    assert h.percentile(0.99) == 0.0
    assert h.summary_ms()["max"] == 0.0
    assert repr(h) == "Histogram(empty)"


def test_percentiles_are_within_bucket_precision() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-7, 1.5) for _ in range(20000)]
    h = Histogram.of(values)
    ordered = sorted(values)
    for q in (0.5, 0.9, 0.99, 0.999):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        assert exact <= h.percentile(q) <= exact * 1.1, q
    assert h.min == min(values)
    assert h.max == max(values)
    assert h.mean == pytest.approx(sum(values) / len(values))


def test_extremes_are_exact() -> None:
    h = Histogram.of([0.0, 5e-7, 2.0, 3600.0])
    assert h.percentile(0.0) == 0.0
    assert h.percentile(1.0) == 3600.0
    assert h.percentile(0.5) <= 1e-6


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Histogram().record(-1.0)
    with pytest.raises(ValueError):
        Histogram().record(float("nan"))
    with pytest.raises(ValueError):
        Histogram().percentile(1.5)


def test_merge_equals_recording_everything() -> None:
    a, b = Histogram.of([0.001, 0.002]), Histogram.of([0.5, 0.0001, 0.003])
    merged = a.copy()
    merged.merge(b)
    whole = Histogram.of([0.001, 0.002, 0.5, 0.0001, 0.003])
    assert merged.to_dict() == whole.to_dict()
    assert a.count == 2  # copy() was independent


def test_json_round_trip() -> None:
    h = Histogram.of([0.001 * i for i in range(1, 500)])
    again = Histogram.from_dict(json.loads(json.dumps(h.to_dict())))
    assert again.to_dict() == h.to_dict()
    assert again.percentile(0.99) == h.percentile(0.99)
    assert Histogram.from_dict(Histogram().to_dict()).count == 0


def test_buckets_are_ordered_and_sum_to_count() -> None:
    h = Histogram.of([0.01, 0.01, 0.2, 0.003])
    edges = [edge for edge, _ in h.buckets()]
    assert edges == sorted(edges)
    assert sum(n for _, n in h.buckets()) == h.count == len(h) == 4
