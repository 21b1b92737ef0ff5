"""sockserve.plots: drawn with the Agg backend from hand-made runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sockserve.measure.experiment import Comparison, RunResult
from sockserve.core.histogram import Histogram

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sockserve.plots import comparison as plots  # noqa: E402


def make_run(server: str, base_ms: float, rps: float, *, children: bool = False,
             errors: int = 0) -> RunResult:
    # 1000 latencies: mostly base_ms, a tail ten times slower.
    values = [base_ms / 1000.0] * 980 + [base_ms / 100.0] * 20
    hist = Histogram.of(values)
    threads = [[i / 10, 2 + (i % 3)] for i in range(20)]
    kids = [[i / 10, (i % 4) if children else 0] for i in range(20)]
    return RunResult(
        server=server, workload="io", requests=1000 + errors, errors=errors,
        throughput_rps=rps, latency_ms=hist.summary_ms(), threads=threads, children=kids,
        histogram=hist.to_dict(), mode="closed", clients=8, duration=2.0,
    )


@pytest.fixture
def comparison() -> Comparison:
    return Comparison(
        runs=[make_run("plain", 80.0, 100.0), make_run("threading", 11.0, 700.0, errors=3),
              make_run("forking", 14.0, 500.0, children=True)],
        workload="io",
    )


@pytest.fixture(scope="module", autouse=True)
def fonts_loaded():
    """Render text once first: matplotlib keeps its font files open (a
    cache, not a leak), which the per-test descriptor check would flag."""
    import io

    fig = plots.plot_comparison([make_run("warm-up", 1.0, 1.0)])
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def test_latency_plot_has_one_line_per_run_on_log_axes(comparison: Comparison) -> None:
    ax = plots.plot_latency(comparison)
    assert labels(ax) == ["plain", "threading", "forking"]
    assert ax.get_yscale() == "log"
    assert "percentile" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()][:4] == ["0%", "50%", "90%", "99%"]
    # The tail shows: each curve ends ten times higher than its median.
    for line, run in zip(ax.get_lines(), comparison.runs):
        ys = line.get_ydata()
        assert min(ys) == pytest.approx(run.latency_ms["p50"], rel=0.1)
        assert max(ys) == pytest.approx(run.latency_ms["max"], rel=0.01)
        assert max(ys) > 5 * min(ys)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["plain", "threading", "forking"]
    assert len({line.get_marker() for line in ax.get_lines()}) == 3


def test_latency_plot_without_histogram_uses_the_percentiles() -> None:
    run = make_run("plain", 10.0, 100.0)
    run.histogram = {}
    xs, ys = plots.percentile_curve(run)
    assert ys[:4] == [run.latency_ms[k] for k in ("p50", "p90", "p99", "p999")]
    assert xs == sorted(xs)
    ax = plots.plot_latency([run])
    assert labels(ax) == ["plain"]


def test_throughput_plot_has_a_bar_per_run(comparison: Comparison) -> None:
    ax = plots.plot_throughput(comparison)
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [100.0, 700.0, 500.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["plain", "threading", "forking"]
    texts = [t.get_text() for t in ax.texts]
    assert "700\n3 errors" in texts and "100" in texts


def test_concurrency_plot_draws_children_only_for_forking(comparison: Comparison) -> None:
    ax = plots.plot_concurrency(comparison)
    assert labels(ax) == ["plain threads", "threading threads", "forking threads",
                          "forking children"]
    forking_children = ax.get_lines()[-1]
    assert forking_children.get_linestyle() == "--"
    # Runs are offset a little so equal counts stay apart; the label says so.
    assert max(forking_children.get_ydata()) == pytest.approx(3 + 0.08)
    assert ax.get_xlabel().startswith("time (s)")
    caption = " ".join(ax.get_xlabel().split())
    assert "offset by up to \u00b10.08 so equal counts stay apart" in caption
    assert "read every 0.05 s" in caption  # instant samples, said so


def test_plot_into_given_axes_and_same_colour_per_run(comparison: Comparison) -> None:
    fig, (a, b) = plt.subplots(1, 2)
    assert plots.plot_latency(comparison, a) is a
    assert plots.plot_concurrency(comparison, b) is b
    assert a.get_lines()[2].get_color() == b.get_lines()[2].get_color()


def test_plot_comparison_makes_three_panels(comparison: Comparison) -> None:
    fig = plots.plot_comparison(comparison)
    assert [ax.get_title() for ax in fig.axes] == [
        "Latency by percentile", "Throughput", "Server threads and child processes"]
    assert "io workload" in fig._suptitle.get_text()


def test_accepts_json_dicts_and_lists(comparison: Comparison, tmp_path) -> None:
    path = tmp_path / "c.json"
    comparison.save(path)
    data = json.loads(path.read_text())
    assert labels(plots.plot_latency(data)) == ["plain", "threading", "forking"]
    assert labels(plots.plot_latency(comparison.runs[:1])) == ["plain"]
    with pytest.raises(TypeError):
        plots.as_runs(42)


def test_save_comparison_plot_writes_a_png(comparison: Comparison, tmp_path) -> None:
    out = tmp_path / "c.png"
    plots.save_comparison_plot(comparison, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []


def test_importing_plots_or_sockserve_does_not_import_matplotlib() -> None:
    code = ("import sys, sockserve, sockserve.plots, sockserve.measure.experiment, sockserve.measure.kinds; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def renderer_boxes(ax):
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    return ax.get_window_extent(renderer), ax.get_legend().get_window_extent(renderer)


@pytest.mark.parametrize("draw", [plots.plot_latency, plots.plot_concurrency])
def test_legends_never_sit_over_the_data(comparison: Comparison, draw) -> None:
    ax = draw(comparison)
    axes_box, legend_box = renderer_boxes(ax)
    assert legend_box.y1 <= axes_box.y0 + 1, (legend_box, axes_box)  # below the axes


def test_concurrency_counts_are_told_apart_and_surprises_explained(comparison: Comparison) -> None:
    forking = comparison.runs[2]
    forking.children = [[i / 10, 11.0 if i == 5 else 2.0] for i in range(20)]
    for run in comparison.runs:
        run.sampling, run.sample_interval = "peak", 0.1
    ax = plots.plot_concurrency(comparison)
    lines = ax.get_lines()
    assert len({line.get_marker() for line in lines[:3]}) == 3
    # Equal thread counts: three different heights, so none hides another.
    firsts = {round(float(line.get_ydata()[0]), 3) for line in lines[:3]}
    assert len(firsts) == 3
    assert "peak per interval" in ax.get_title()
    assert "most alive at once in each 0.1 s" in " ".join(ax.get_xlabel().split())
    notes = [t.get_text() for t in ax.texts]
    assert any("forking: up to 11 children for 8 clients: a child lives on after its reply "
               "until the server reaps it" in " ".join(n.split()) for n in notes)


def test_a_run_above_its_physical_limit_is_flagged_on_the_plots() -> None:
    from sockserve.measure.limits import Cores

    def cpu_run(server: str, rps: float) -> RunResult:
        run = make_run(server, 10.0, rps)
        run.workload, run.work_ms, run.concurrency = "cpu", 10.0, server
        run.cores = Cores(1.0, 1).to_dict()
        return run

    cmp = Comparison(runs=[cpu_run("plain", 95.0), cpu_run("asyncio", 124.6)], workload="cpu")
    ax = plots.plot_throughput(cmp)
    texts = [t.get_text() for t in ax.texts]
    assert "95" in texts and "125!\nabove the limit" in texts
    bad = ax.patches[1]
    assert bad.get_alpha() == pytest.approx(0.45)
    limits = [c for c in ax.collections if c.get_linestyle()[0][1]]  # dashed limit marks
    assert limits and all(seg[0][1] == pytest.approx(100.0) for c in limits for seg in c.get_segments())
    assert "the most the cores, the clients or the server's workers allow" in ax.get_xlabel()
    assert labels(plots.plot_latency(cmp))[1] == "asyncio (above the physical limit!)"
    fig = plots.plot_comparison(cmp)
    assert "1 core" in fig._suptitle.get_text()
    assert "asyncio: 124.6 req/s is above the most that is possible" in fig._supxlabel.get_text()


# -- the throughput figure: every limit drawn, no label struck through, told apart without colour --


def struck_through(ax) -> list[str]:
    """The labels a dashed limit line runs through (display coordinates)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for text in ax.texts:
        box = text.get_window_extent(renderer)
        for collection in ax.collections:
            for (x0, y), (x1, _) in collection.get_segments():
                (dx0, dy), (dx1, _) = ax.transData.transform([(x0, y), (x1, y)])
                if box.y0 - 1 < dy < box.y1 + 1 and dx0 < box.x1 and dx1 > box.x0:
                    found.append(text.get_text())
    return found


def cpu_runs(rates: list[tuple[str, float]], cores: float = 1.0, **extra) -> Comparison:
    from sockserve.measure.limits import Cores

    runs = []
    for server, rps in rates:
        run = make_run(server, 10.0, rps)
        run.workload, run.work_ms, run.concurrency, run.clients = "cpu", 10.0, server, 4
        run.cores = Cores(cores, max(1, int(cores))).to_dict()
        for key, value in extra.items():
            setattr(run, key, value)
        runs.append(run)
    return Comparison(runs=runs, workload="cpu")


@pytest.mark.parametrize("make", [
    lambda: cpu_runs([("plain", 96.0), ("threading", 99.0), ("forking", 92.0)]),          # just under 100
    lambda: cpu_runs([("plain", 79.0), ("threading", 88.0), ("forking", 85.0)], cores=2.0),  # 04's saved run
])
@pytest.mark.parametrize("whole", [False, True])
def test_no_bar_label_is_struck_through_by_a_limit(make, whole: bool) -> None:
    cmp = make()
    ax = plots.plot_comparison(cmp).axes[1] if whole else plots.plot_throughput(cmp)
    assert ax.get_title() == "Throughput"
    assert struck_through(ax) == []


def test_every_known_limit_is_drawn_and_the_axis_reaches_it() -> None:
    """On two cores forking's limit (200 req/s) is far above the bars: drawn all the same."""
    ax = plots.plot_throughput(cpu_runs([("plain", 79.0), ("threading", 88.0), ("forking", 85.0)], cores=2.0))
    heights = sorted(seg[0][1] for c in ax.collections for seg in c.get_segments())
    assert heights == [pytest.approx(100.0), pytest.approx(100.0), pytest.approx(200.0)]
    assert ax.get_ylim()[1] > 200.0


def test_a_pool_limit_is_its_workers_as_lesson_07_prints() -> None:
    runs = []
    for server, rps, bound in (("threading", 430.0, None), ("threadpool", 150.0, 8), ("prefork", 78.0, 4)):
        run = make_run(server, 50.0, rps)
        run.wait_ms, run.clients, run.concurrency, run.bound = 50.0, 24, server, bound
        run.cores = {"usable": 2.0, "affinity": 2}
        runs.append(run)
    ax = plots.plot_throughput(Comparison(runs=runs, workload="io"))
    heights = [seg[0][1] for c in ax.collections for seg in c.get_segments()]
    assert heights == [pytest.approx(480.0), pytest.approx(160.0), pytest.approx(80.0)]
    assert struck_through(ax) == []


def test_series_are_told_apart_without_colour(comparison: Comparison) -> None:
    bars = plots.plot_throughput(comparison).patches
    assert len({bar.get_hatch() for bar in bars}) == 3
    lines = plots.plot_latency(comparison).get_lines()
    assert len({line.get_marker() for line in lines}) == 3
    assert len({str(line.get_linestyle()) for line in lines}) == 3
    from sockserve.plots.style import PALETTE

    assert {line.get_color() for line in lines} <= set(PALETTE)


def test_each_figure_has_a_text_alternative_from_its_data(comparison: Comparison) -> None:
    assert plots.describe_throughput(comparison) == (
        "Throughput: plain 100 req/s; threading 700, 3 errors req/s; forking 500 req/s.")
    latency = plots.describe_latency(comparison)
    assert latency.startswith("Latency by percentile: plain median 85 ms, p99 800 ms, slowest 800 ms; ")
    assert plots.describe_concurrency(comparison) == (
        "Server threads and child processes: plain at most 4 threads; threading at most 4 threads; "
        "forking at most 4 threads and 3 children.")
    whole = plots.describe_comparison(comparison)
    assert whole.startswith("io workload, closed loop, 8 clients, 2 s per server.")
    assert "\n" not in whole and plots.describe_throughput(comparison) in whole
    limited = plots.describe_throughput(cpu_runs([("plain", 79.0), ("forking", 85.0)], cores=2.0))
    assert limited == "Throughput: plain 79 req/s (limit 100); forking 85 req/s (limit 200)."
