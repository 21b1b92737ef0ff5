"""What ``server.stats`` costs per request, as ``benchmarks/bench_callgrind.py``
counted it.

The benchmark (``--json PATH``) stores, per server model, the instructions
one request costs with statistics on and with ``collect_stats = False``.
:func:`load_counting_costs` reads that file into plain rows,
:func:`counting_cost_table` prints them and :func:`counting_cost_sentences`
says what they mean; lesson 05 shows the stored run
(``notebooks/data/callgrind.json``, shipped with the workbook).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CountingCost", "CountingCosts", "load_counting_costs", "counting_cost_table", "counting_cost_sentences"]


@dataclass(frozen=True)
class CountingCost:
    """One server model: instructions per request with statistics on
    (``counted``) and off (``uncounted``), and the standard library's
    (``stdlib``) for the same model or, for sockserve's own models, the
    closest one (``stdlib_model``: threading for the thread pool, forking
    for prefork)."""

    model: str
    counted: float
    uncounted: float
    stdlib: float
    stdlib_model: str

    @property
    def cost(self) -> float:
        """Instructions per request that counting adds."""
        return self.counted - self.uncounted

    @property
    def share(self) -> float:
        """The part of a counted request that is counting (0..1)."""
        return self.cost / self.counted if self.counted else 0.0


@dataclass(frozen=True)
class CountingCosts:
    """The rows of one benchmark run, and where it ran."""

    python: str
    machine: str
    mode: str
    rows: tuple[CountingCost, ...]


def load_counting_costs(path: str | Path) -> CountingCosts:
    """Read the JSON that ``bench_callgrind.py --json`` wrote. Models measured
    without a statistics-off run are left out."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    rows = []
    for row in data["rows"]:
        if not row.get("stats_off_ir") or not row.get("sockserve_ir") or not row.get("stdlib_ir"):
            continue
        rows.append(CountingCost(
            model=row["model"],
            counted=statistics.fmean(row["sockserve_ir"]),
            uncounted=statistics.fmean(row["stats_off_ir"]),
            stdlib=statistics.fmean(row["stdlib_ir"]),
            stdlib_model=str(row.get("stdlib_model") or row["model"]),
        ))
    if not rows:
        raise ValueError(f"{path}: no model was measured with statistics off (collect_stats = False)")
    return CountingCosts(str(data["python"]), str(data["machine"]), str(data["mode"]), tuple(rows))


def counting_cost_table(costs: CountingCosts) -> str:
    """The rows as a text table: instructions per request."""
    width = max(len(row.model) for row in costs.rows)
    lines = [f"{'model':<{width}}  {'stats on':>9}  {'stats off':>9}  {'counting':>8}  {'share':>5}  "
             f"{'stdlib':>9}"]
    for row in costs.rows:
        against = "" if row.stdlib_model == row.model else f"  (the stdlib's {row.stdlib_model})"
        lines.append(
            f"{row.model:<{width}}  {row.counted:>9,.0f}  {row.uncounted:>9,.0f}  {row.cost:>8,.0f}  "
            f"{row.share:>5.1%}  {row.stdlib:>9,.0f}{against}"
        )
    return "\n".join(lines)


def counting_cost_sentences(costs: CountingCosts) -> list[str]:
    """What the table says, computed from it."""
    cheapest = min(costs.rows, key=lambda row: row.share)
    dearest = max(costs.rows, key=lambda row: row.share)
    leaner = [row.model for row in costs.rows if row.counted <= row.stdlib]
    sentences = [
        f"Counted by callgrind on Python {costs.python} ({costs.machine}, {costs.mode}).",
        f"Counting costs from {cheapest.share:.1%} of a request ({cheapest.model}, {cheapest.cost:,.0f} "
        f"instructions) to {dearest.share:.1%} ({dearest.model}, {dearest.cost:,.0f} instructions).",
    ]
    if len(leaner) == len(costs.rows):
        sentences.append("With statistics on, every model here costs no more instructions per request than the "
                         "standard library's, which counts nothing.")
    else:
        dearer = [row.model for row in costs.rows if row.model not in leaner]
        sentences.append(f"With statistics on, {', '.join(dearer)} cost more instructions per request than the "
                         f"standard library's; the others no more.")
    return sentences
