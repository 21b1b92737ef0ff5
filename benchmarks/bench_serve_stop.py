"""How long ``sockserve serve`` takes to stop on its first signal, whatever its clients do.

Issue 15 item 1 asks that ``sockserve serve`` stop within 2 s of the first
SIGINT or SIGTERM, for every kind, with idle clients, a client dripping a
request a byte at a time and a client in the middle of a 30 s request, all at
once. ``tests/test_servecommand.py`` checks what the stop does (everything in
flight cut off after the grace, nothing left behind) and that it does not wait
for the clients; how long it takes is a timing goal that depends on the
machine's load, measured here with the test's own scenario
(``stop_with_clients``).

For each kind and round: the seconds from the signal to the process's exit,
and the drain's own wait as the server reports it (the grace, 1 s, plus
ending cut-off children). Rounds alternate the kinds, so machine noise hits
them alike; the load average is printed before and after.

    python benchmarks/bench_serve_stop.py [--rounds 3] [--kinds forking,threading]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from test_servecommand import KINDS, stop_with_clients  # type: ignore[import-not-found]  # noqa: E402

#: The goal of issue 15 item 1, in seconds.
GOAL = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds (default: all)")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kinds: {', '.join(unknown)} (known: {', '.join(KINDS)})")
    print(f"load average before: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    took: dict[str, list[float]] = {k: [] for k in kinds}
    waited: dict[str, list[float]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="bench-stop-") as folder:
        for n in range(args.rounds):
            for kind in kinds:
                stopped = stop_with_clients(kind, signal.SIGTERM, Path(folder))
                if stopped.returncode != 0:
                    print(f"{kind}: exit status {stopped.returncode}:\n{stopped.err}", file=sys.stderr)
                    return 1
                took[kind].append(stopped.took)
                drained = re.search(r"cut off, in (\d+\.\d+) s\)", stopped.err)
                if drained:
                    waited[kind].append(float(drained.group(1)))
            print(f"round {n + 1} done", flush=True)
    print(f"seconds from the signal to the exit, {args.rounds} rounds (goal: at most {GOAL:g} s)")
    for kind in kinds:
        values = took[kind]
        drain = f"drain {statistics.median(waited[kind]):.2f}" if waited[kind] else "nothing in flight"
        verdict = "within the goal" if max(values) <= GOAL else "OVER the goal"
        print(f"{kind:24} median {statistics.median(values):5.2f}  max {max(values):5.2f}  ({drain})  {verdict}")
    print(f"load average after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
