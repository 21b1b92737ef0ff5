"""sockserve.measure.conclusions: sentences computed from the numbers beside
them, on one core, on two, on a busy machine; no difference claimed within
the noise of the rounds; a loss called a loss."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sockserve.measure.conclusions import (
    conclusions,
    expected_speedup,
    how_many,
    latency_sentences,
    report,
    speedup,
    speedup_text,
    throughput_spread,
)
from sockserve.measure.limits import Cores
from sockserve.measure.results import Comparison, RunResult
from sockserve.measure.spread import Spread
from sockserve.measure.usage import RoundFigures

ROUND_S = 1.0


def run(server: str, rps: float | list[float], *, cores: float = 1.0, work_ms: float = 10.0,
        wait_ms: float = 0.0, clients: int = 4, busy: float = 0.95, generator: float = 0.05,
        others: float = 0.0, concurrency: str | None = None, **extra: Any) -> RunResult:
    """A run measured in rounds of ROUND_S seconds: *rps* per round, the
    server keeping *busy* cores busy, the generator *generator* cores, other
    programs *others* cores (of the ``int(cores)`` CPUs)."""
    per_round = rps if isinstance(rps, list) else [rps] * 3
    rounds = [RoundFigures(
        requests=round(x * ROUND_S), ok=round(x * ROUND_S), elapsed=ROUND_S, throughput_rps=x,
        p50_ms=1.0, p90_ms=2.0, cpu_window_s=ROUND_S, server_cpu_s=busy * ROUND_S,
        generator_cpu_s=generator * ROUND_S, busy_cpu_s=(busy + generator + others) * ROUND_S,
        busy_cpus=max(1, int(cores))) for x in per_round]
    ok = sum(r.ok for r in rounds)
    elapsed = ROUND_S * len(rounds)

    def total(name: str) -> float:
        return float(sum(getattr(r, name) for r in rounds))

    return RunResult(
        server=server, workload="cpu" if work_ms else ("io" if wait_ms else "echo"),
        requests=ok, errors=0, throughput_rps=ok / elapsed,
        latency_ms={"p50": 0.8, "p90": 55.0, "p99": 120.0, "max": 300.0},
        concurrency=concurrency or server, clients=clients, duration=elapsed, elapsed=elapsed,
        work_ms=work_ms, wait_ms=wait_ms, cores=Cores(cores, max(1, int(cores))).to_dict(),
        server_cpu_s=total("server_cpu_s"), generator_cpu_s=total("generator_cpu_s"),
        busy_cpu_s=total("busy_cpu_s"), busy_cpus=max(1, int(cores)), cpu_window_s=elapsed,
        rounds=rounds, **extra,
    )


def comparison(*runs: RunResult) -> Comparison:
    return Comparison(runs=list(runs), workload=runs[0].workload, rounds=len(runs[0].rounds))


def by_key(found: list[Any], key: str, server: str) -> str:
    (text,) = [c.text for c in found if c.key == key and c.servers[:1] == (server,)]
    return str(text)


# -- one core ------------------------------------------------------------------------


def test_one_quiet_core_threading_and_forking_gain_nothing_and_say_why() -> None:
    cmp = comparison(run("plain", [95, 96, 97]), run("threading", [93, 97, 94]),
                     run("forking", [90, 91, 92], busy=0.96))
    found = conclusions(cmp)
    assert found[0].key == "machine"
    assert found[0].text == ("A quiet machine: other programs took 0.00 of your 1 core during the comparison "
                             "(0.00 to 0.00 in its rounds); the load generator used 0.05 of a core.")
    threading = by_key(found, "throughput", "threading")
    assert threading == ("threading and plain served requests at rates the noise cannot tell apart: 0.99x "
                         "(95 vs 96 req/s; 0.97x to 1.01x over 3 rounds).")
    work = by_key(found, "work", "threading")
    assert work.startswith("threading is one process, so the GIL lets it run Python on at most one core")
    assert "per CPU second threading did as much work as plain, within noise (100 vs 101 requests" in work
    assert "on 0.95 cores against 0.95" in work
    forking = by_key(found, "work", "forking")
    assert "forking's processes each have their own GIL, so they can use up to 1 of your 1 core" in forking
    assert "There is no second core to run on." in forking


def test_a_busy_core_is_named_with_its_figure_and_explains_a_win() -> None:
    """The issue's one-core case: threading beat plain because it won more of
    a core other programs shared; per CPU second it did no more."""
    plain = run("plain", [40, 42, 41], busy=0.41, others=0.55, generator=0.04)
    threading = run("threading", [50, 52, 49], busy=0.51, others=0.45, generator=0.04)
    found = conclusions(comparison(plain, threading))
    machine = found[0]
    assert machine.key == "machine" and machine.value == pytest.approx(0.5)
    assert machine.text.startswith("A busy machine: other programs took 0.50 of your 1 core during the "
                                   "comparison (0.45 to 0.55 in its rounds)")
    assert "Requests per second then measure the share of the CPU each server won" in machine.text
    assert by_key(found, "throughput", "threading") == (
        "threading served 1.23x plain's requests per second, more in every round "
        "(50 vs 41 req/s; 1.20x to 1.25x over 3 rounds).")
    work = by_key(found, "work", "threading")
    assert "per CPU second threading did as much work as plain, within noise" in work
    assert "on 0.51 cores against 0.41" in work
    assert work.endswith("It served more only because it won more of the CPU while other programs took "
                         "0.45 of your 1 core: the scheduler gives each runnable thread its turn.")


# -- two cores -----------------------------------------------------------------------


def test_two_quiet_cores_let_forking_win_by_keeping_both_busy() -> None:
    cmp = comparison(run("plain", [95, 96, 94], cores=2), run("threading", [94, 95, 93], cores=2),
                     run("forking", [170, 175, 168], cores=2, busy=1.85))
    found = conclusions(cmp)
    assert found[0].text.startswith("A quiet machine: other programs took 0.00 of your 2 cores")
    assert by_key(found, "throughput", "forking") == (
        "forking served 1.80x plain's requests per second, more in every round "
        "(171 vs 95 req/s; 1.79x to 1.82x over 3 rounds).")
    work = by_key(found, "work", "forking")
    assert "can use up to 2 of your 2 cores here" in work and "on 1.85 cores against 0.95" in work
    assert "It served more because it kept more cores busy." in work
    assert "threading is one process" in by_key(found, "work", "threading")


def test_two_busy_cores_say_who_took_the_second_one() -> None:
    """The issue's two-core case: forking gained nothing, and the sentence
    says why from the figures, not from a guess."""
    plain = run("plain", [80, 88, 84], cores=2, busy=0.9, others=0.8, generator=0.2)
    forking = run("forking", [82, 90, 79], cores=2, busy=1.0, others=0.8, generator=0.2)
    found = conclusions(comparison(plain, forking))
    assert found[0].text.startswith("A busy machine: other programs took 0.80 of your 2 cores")
    assert "the noise cannot tell apart: 1.00x (84 vs 84 req/s; 0.94x to 1.02x over 3 rounds)" in by_key(
        found, "throughput", "forking")
    work = by_key(found, "work", "forking")
    assert ("Of your 2 cores, other programs took 0.80 and the load generator 0.20, "
            "leaving 1.00 for the server.") in work


def test_noise_covering_one_is_never_called_a_difference() -> None:
    cmp = comparison(run("plain", [100, 100, 100], cores=2), run("forking", [94, 112, 103], cores=2))
    spread = throughput_spread(cmp.run("forking"), cmp.run("plain"))
    assert spread.covers_one and spread.direction() == 0
    assert (spread.low, spread.high) == (pytest.approx(0.94), pytest.approx(1.12))
    text = by_key(conclusions(cmp), "throughput", "forking")
    assert "the noise cannot tell apart: 1.03x (103 vs 100 req/s; 0.94x to 1.12x over 3 rounds)" in text
    assert "more" not in text and "fewer" not in text


def test_a_loss_is_called_a_loss_and_its_cost_given() -> None:
    plain = run("plain", [100, 100, 100], cores=2, busy=1.0)
    forking = run("forking", [78, 80, 82], cores=2, busy=1.0)   # the same CPU, fewer requests: a fork each
    found = conclusions(comparison(plain, forking))
    assert by_key(found, "throughput", "forking") == (
        "forking served 0.80x plain's requests per second, fewer in every round "
        "(80 vs 100 req/s; 0.78x to 0.82x over 3 rounds).")
    work = by_key(found, "work", "forking")
    assert "per CPU second forking did 0.80x plain's work (80 vs 100 requests" in work
    assert work.endswith("Each request cost it 12.5 ms of CPU against plain's 10.0 ms: starting a process "
                         "(a fork) is work too.")


def test_one_round_needs_a_larger_difference() -> None:
    small = Spread(1.1, 1.1, 1.1, 1)
    assert small.direction() == 0 and small.text() == "within noise (1.10x, one round)"
    assert Spread(1.2, 1.2, 1.2, 1).direction() == 1 and Spread(0.8, 0.8, 0.8, 1).direction() == -1
    # Rounds that all agree, by less than 5%, are not a difference either.
    assert Spread(1.03, 1.01, 1.05, 5).direction() == 0


def test_more_work_per_cpu_second_under_the_gil_is_called_a_measurement_fault() -> None:
    plain = run("plain", [90, 91, 92], busy=0.95, work_ms=5.0)
    threading = run("threading", [120, 121, 122], busy=0.95, work_ms=5.0)
    work = by_key(conclusions(comparison(plain, threading)), "work", "threading")
    assert "is what the GIL rules out: a CPU second bought less work in some turns than in others" in work


# -- other workloads, flags, words -----------------------------------------------------


def test_waiting_requests_report_the_measured_speedup() -> None:
    cmp = comparison(run("plain", 89.0, work_ms=0, wait_ms=10, clients=8),
                     run("forking", 312.0, work_ms=0, wait_ms=10, clients=8))
    assert speedup(cmp, "forking") == pytest.approx(312 / 89)
    assert speedup_text(cmp, "forking") == "forking: 3.5x plain's throughput (312 vs 89 req/s)"
    line = by_key(conclusions(cmp), "throughput", "forking")
    assert line.startswith("On waiting requests: forking served 3.5x plain's requests per second, more in "
                           "every round")
    assert line.endswith("The waits overlap. With 8 clients, forking's limit is 8x plain's "
                         "(at most 8 requests wait at once).")


def test_an_invalid_run_is_named_and_left_out_of_every_ratio() -> None:
    cmp = comparison(run("plain", 50.0), run("asyncio", 124.6))
    found = conclusions(cmp)
    assert [c.key for c in found] == ["machine", "invalid"]
    assert "asyncio's 125.0 req/s is more than your 1 core can do (100 req/s" in found[1].text
    assert speedup(cmp, "asyncio") is None
    assert "no valid ratio" in speedup_text(cmp, "asyncio")


def test_tiny_requests_generator_and_children() -> None:
    plain = run("plain", 4000.0, work_ms=0, clients=8, busy=0.35, generator=0.6)
    forking = run("forking", 900.0, work_ms=0, clients=8, busy=0.6, generator=0.2,
                  children=[[0.0, 3.0], [0.1, 11.0]])
    cmp = comparison(plain, forking)
    found = conclusions(cmp)
    assert [c.key for c in found] == ["machine", "throughput", "generator", "children"]
    assert found[1].text.startswith("On tiny requests: forking served 0.23x plain's requests per second, "
                                    "fewer in every round")
    assert found[1].text.endswith("Each request cost forking 0.67 ms of CPU against plain's 0.09 ms: its cost "
                                  "per request (a thread or a process) outweighs the work.")
    assert "load generator used more of the CPU" in found[2].text
    assert "up to 11 children alive at once with only 8 clients" in found[3].text
    assert report(cmp).splitlines() == [c.text for c in found]


def test_unmeasured_cpu_claims_nothing_about_it() -> None:
    bare = [RunResult(server=name, workload="cpu", requests=200, errors=0, throughput_rps=rps, latency_ms={},
                      concurrency=name, clients=4, elapsed=2.0, work_ms=10.0, cores=Cores(1.0, 1).to_dict())
            for name, rps in (("plain", 90.0), ("threading", 91.0))]
    found = conclusions(Comparison(runs=bare))
    assert [c.key for c in found] == ["throughput"]
    assert "the noise cannot tell apart: 1.01x (91 vs 90 req/s; one round: no spread measured)" in found[0].text


def test_expected_speedup_before_measuring() -> None:
    base = run("plain", 1.0, cores=2, clients=8)
    assert expected_speedup("threading", base) == 1.0
    assert expected_speedup("forking", base) == 2.0
    assert expected_speedup("forking", run("plain", 1.0, cores=16, clients=4)) == 4.0
    assert expected_speedup("threading", run("plain", 1.0, work_ms=0, wait_ms=10, clients=8)) == 8.0
    assert expected_speedup("threading", run("plain", 1.0, work_ms=0)) is None


def test_counts_and_latencies_in_words() -> None:
    assert how_many(17, 30) == "17 of 30, more than half"
    assert how_many(0, 30) == "none of 30"
    assert how_many(30, 30) == "all 30"
    assert how_many(2, 30) == "2 of 30, fewer than one in ten"
    assert how_many(15, 30) == "15 of 30, about half"
    assert latency_sentences(run("plain", 1.0)) == [
        "Half of the requests took under 0.80 ms.", "Nine requests in ten took under 55 ms.",
        "Ninety-nine in a hundred took under 120 ms.", "The slowest took 300 ms."]
    assert latency_sentences({"p50": 12.345}) == ["Half of the requests took under 12 ms."]


def test_threads_and_children_in_words_from_the_counts_the_figure_draws() -> None:
    from sockserve.measure.conclusions import concurrency_sentences

    plain = run("plain", 90.0, work_ms=0, wait_ms=10, clients=8, sampling="peak", threads=[[0.1, 0.0]])
    threading = run("threading", 600.0, work_ms=0, wait_ms=10, clients=8, sampling="peak",
                    threads=[[0.1, 8.0], [0.2, 9.0]])
    instant = run("forking", 150.0, work_ms=0, wait_ms=10, clients=8, threads=[[0.1, 2.0]],
                  children=[[0.1, 8.0]])
    texts = [c.text for c in concurrency_sentences(comparison(plain, threading, instant))]
    assert texts == [
        "plain: at most 0 handler threads and 0 child processes alive at once, with 8 clients: it ran every "
        "request in its serving thread, one at a time.",
        "threading: at most 9 handler threads and 0 child processes alive at once, with 8 clients: one per "
        "request in flight, and a thread or child that has sent its reply lives on for a moment, overlapping "
        "the next request's.",
        "forking: at most 2 threads (the serving thread included) and 8 child processes alive at once, with 8 "
        "clients.",
    ]


def test_a_bound_just_below_one_is_not_shown_as_one() -> None:
    assert Spread(0.95, 0.87, 0.996, 5).range_text() == "0.87x to 0.996x over 5 rounds"
    assert Spread(1.1, 1.004, 1.3, 5).range_text() == "1.004x to 1.30x over 5 rounds"
    assert Spread(1.0, 1.0, 1.0, 3).range_text() == "1.00x to 1.00x over 3 rounds"


def test_a_ratio_above_the_limits_ratio_is_never_called_impossible() -> None:
    # On a busy machine plain falls short of its own limit (79 of 100 req/s)
    # while threading nearly reaches its own: the measured ratio (8.3x) passes
    # the ratio of the limits (8x), and the sentence must not call that impossible.
    cmp = comparison(run("plain", 79.0, work_ms=0, wait_ms=10, clients=8),
                     run("threading", 653.0, work_ms=0, wait_ms=10, clients=8))
    line = by_key(conclusions(cmp), "throughput", "threading")
    assert "8.3x plain's requests per second" in line
    bounds = [float(n) for n in re.findall(r"at most (\d+(?:\.\d+)?)x", line, re.I)]
    assert all(bound >= 8.3 for bound in bounds), line
    assert "threading's limit is 8x plain's" in line
