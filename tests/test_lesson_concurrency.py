"""Lesson 04 (notebooks/04-concurrency.ipynb) as saved: its text agrees with the
figures and sentences saved beside it.

Each test reads the committed notebook, the documentation a student opens,
and fails on the lesson as it was at ad090c3, where the text said the plain
server "stays at its two threads" beside a figure that counts 0, pointed at a
panel figure the notebook did not save, stated outcomes ("cannot be faster
than the plain one") the saved run contradicted, and blamed "other programs"
for a loss without measuring them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "04-concurrency.ipynb"


@pytest.fixture(scope="module")
def cells() -> list[Any]:
    return list(nbformat.read(NOTEBOOK, as_version=4).cells)


def markdown(cells: list[Any]) -> str:
    return " ".join(" ".join(c.source.split()) for c in cells if c.cell_type == "markdown")


def text_of(cell: Any) -> str:
    found = []
    for output in cell.get("outputs", []):
        if "text" in output:
            found.append(output["text"])
        elif "text/plain" in output.get("data", {}) and "image/png" not in output.get("data", {}):
            found.append(output["data"]["text/plain"])
    return "".join(found)


def has_image(cell: Any) -> bool:
    return any("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def printed(cells: list[Any]) -> list[str]:
    return [line for c in cells if c.cell_type == "code" for line in text_of(c).splitlines() if line.strip()]


def test_the_text_says_what_the_threads_figure_counts(cells: list[Any]) -> None:
    text = markdown(cells)
    assert "stays at its two threads" not in text and "plus the two threads" not in text
    assert "The figure counts **handler threads**" in text
    counts = [line for line in printed(cells) if re.match(r"^(plain|threading|forking): at most \d+ handler threads", line)]
    assert [line.split(":")[0] for line in counts] == ["plain", "threading", "forking"]
    plain = counts[0]
    assert plain.startswith("plain: at most 0 handler threads and 0 child processes")
    assert plain.endswith("it ran every request in its serving thread, one at a time.")


def test_every_what_to_look_for_has_its_figure_saved_above_it(cells: list[Any]) -> None:
    pointers = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "What to look for" in c.source]
    assert pointers
    for i in pointers:
        before = []
        for cell in reversed(cells[:i]):
            if cell.cell_type == "markdown":
                break
            before.append(cell)
        assert any(has_image(cell) for cell in before), f"cell {i} points at a figure the notebook did not save"


@pytest.mark.parametrize("claim", [
    "cannot be faster than the plain one",
    "Forking wins when",
    "Threads win when requests wait",
    "On one core, it cannot win",
    "so the gain is less than the number of cores",
    "the throughput stays where the plain server's is",
])
def test_no_static_sentence_states_an_outcome(cells: list[Any], claim: str) -> None:
    assert claim not in markdown(cells)


def test_every_comparison_is_concluded_by_the_computed_sentences(cells: list[Any]) -> None:
    sources = [c.source for c in cells if c.cell_type == "code"]
    for call in ("print(report(io_results))", "print(report(cpu_results))", "print(report(echo_results))",
                 'print(report(reference.cpu, owner="its"))', "print(convoy_report(convoy_results))"):
        assert any(call in source for source in sources), call


def test_other_programs_are_named_only_with_their_measured_share(cells: list[Any]) -> None:
    # The comparison table's legend explains its "others" column and names no share.
    lines = [line for line in printed(cells) if "other programs" in line and not line.startswith("cpu ms/req:")]
    assert lines
    for line in lines:
        assert re.search(r"other programs( took)? \d+\.\d\d", line), line


def test_a_stored_reference_run_is_shown_and_labelled_not_yours(cells: list[Any]) -> None:
    lines = printed(cells)
    label = [line for line in lines if line.startswith("Not your machine: a reference run recorded on ")]
    assert len(label) == 1
    assert re.search(r"with \d+ cores? \(", label[0]) and "other programs took" in label[0]
    start = lines.index(label[0])
    stored = [line for line in lines[start + 1:] if "of its " in line]
    assert stored and not any("your" in line for line in stored)


def test_the_convoy_is_measured_drawn_and_concluded(cells: list[Any]) -> None:
    (cell,) = [c for c in cells if c.cell_type == "code" and "convoy(servers=" in c.source]
    assert has_image(cell)
    out = text_of(cell)
    assert out.startswith("Short requests' latency beside 50 ms requests: plain median")
    for server in ("plain", "threading", "forking"):
        assert f"{server}'s short requests (1 ms of work" in out
    assert "switch intervals" in out


def test_each_saved_figure_is_followed_by_its_text_alternative(cells: list[Any]) -> None:
    alternatives = ("io workload,", "CPU use of ", "Short requests' latency beside", "Throughput: ")
    figures = 0
    for cell in (c for c in cells if c.cell_type == "code"):
        outputs = cell.get("outputs", [])
        for n, output in enumerate(outputs):
            if "image/png" not in output.get("data", {}):
                continue
            figures += 1
            own = output.get("data", {}).get("text/plain", "")
            if own.startswith("The comparison's figure:"):
                continue  # a panel's saved picture carries its text alternative itself
            after = "".join(o.get("text", "") for o in outputs[n + 1:n + 2])
            assert after.startswith(alternatives), (cell.source[:80], after[:80])
    assert figures >= 4


def test_the_saved_sentences_quote_the_figures_drawn(cells: list[Any]) -> None:
    """Every "(a vs b req/s)" in a saved sentence is two of the throughputs the
    figure's text alternative gives, rounded the same way."""
    checked = 0
    for cell in (c for c in cells if c.cell_type == "code" and has_image(c)):
        out = text_of(cell)
        drawn = re.search(r"Throughput: (.*?)\.(?: |$)", out, re.M)
        if drawn is None:
            continue
        checked += 1
        values = {int(v) for v in re.findall(r"(?:plain|threading|forking) (\d+)", drawn.group(1))}
        quoted = re.findall(r"\((\d+) vs (\d+) req/s", out)
        assert quoted, out
        for a, b in quoted:
            assert {int(a), int(b)} <= values, (a, b, values)
    assert checked >= 2  # the io comparison and the echo one


def test_the_cpu_sentences_quote_the_cores_and_work_drawn(cells: list[Any]) -> None:
    """The "on a cores against b" and "(x vs y requests" of the cpu sentences are
    the figures of the CPU-use figure's text alternative, for the run and for plain."""
    checked = 0
    for cell in (c for c in cells if c.cell_type == "code" and "plot_cpu_use(" in c.source):
        out = text_of(cell)
        drawn = {name: (cores, work) for name, cores, work in re.findall(
            r"(plain|threading|forking) kept (\d+\.\d\d) cores busy .*?served (\d+) requests per CPU second", out)}
        assert set(drawn) == {"plain", "threading", "forking"}, out
        for name in ("threading", "forking"):
            (line,) = [line for line in out.splitlines() if line.startswith(f"{name} is one process")
                       or line.startswith(f"{name}'s processes")]
            assert f"on {drawn[name][0]} cores against {drawn['plain'][0]}" in line, line
            assert f"({drawn[name][1]} vs {drawn['plain'][1]} requests" in line, line
            checked += 1
    assert checked == 4  # yours and the stored reference's
