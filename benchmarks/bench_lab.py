"""The lab's promises, timed: live plot update rate and Stop latency, on one core.

The workbook promises a student on a small Binder pod (one core) that the
traffic panel's live charts update at least five times a second while load
runs, that Stop ends a run within a second, and that running a panel's cell
again never blocks the kernel for more than two seconds. This script pins
itself (and so the servers and load workers it starts) to one core, with an
optional busy neighbour on the same core, and measures:

* the traffic panel's chart redraws per second during a run (a threading
  echo server in this process, as a notebook's ServerPanel runs it);
* Stop on the traffic panel: until ``stop()`` returns and the run is over;
* Stop on the compare panel: until ``stop()`` returns, and until the
  partial result is in (servers stopped, in the background);
* running a traffic or compare panel's cell again while it runs: how long
  making the new panel (which stops the old one) blocks the caller.

These promises are timing goals, measured here rather than asserted by the
tests (which check what Stop does, and only that it does not wait for the
run). The summary prints each figure beside its promise.

    python benchmarks/bench_lab.py [--rounds 3] [--neighbour] [--core 0]

Figures are wall-clock and depend on the machine's load: the script prints
the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any


#: What the workbook promises for each figure.
PROMISES = {
    "redraws_per_s": "(promised: at least 5)",
    "traffic_stop_s": "(promised: about 1 s)",
    "compare_stop_s": "(promised: about 1 s)",
    "traffic_rerun_block_s": "(promised: at most 2 s)",
    "rerun_block_s": "(promised: at most 2 s)",
}


def wait_for(predicate: Any, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def traffic_round() -> dict[str, float]:
    from sockserve.lab import ServerPanel, TrafficPanel

    server = ServerPanel(kind="threading", workload="echo")
    server.start()
    traffic = TrafficPanel(server, clients=4, duration=3.0, key="bench-traffic")
    try:
        traffic.start_load()
        began = time.monotonic()
        wait_for(lambda: traffic.model.status().state != "running", 30)
        elapsed = time.monotonic() - began
        rate = traffic.redraws / elapsed
        # Stop: a long run, stopped after one second.
        traffic._ui_duration.value = 30.0
        traffic.start_load()
        wait_for(lambda: len(traffic.model.samples) >= 5, 30)
        t0 = time.monotonic()
        traffic.stop()
        returned = time.monotonic() - t0
        wait_for(lambda: traffic.model.status().state in ("stopped", "done"), 10)
        over = time.monotonic() - t0
        # The cell run again while a run goes on.
        traffic.start_load()
        wait_for(lambda: len(traffic.model.samples) >= 5, 30)
        t0 = time.monotonic()
        again = TrafficPanel(server, key="bench-traffic")
        rerun = time.monotonic() - t0
        again.close()
    finally:
        traffic.close()
        server.close()
    return {"redraws_per_s": rate, "traffic_stop_s": returned, "traffic_over_s": over,
            "traffic_rerun_block_s": rerun}


def compare_round() -> dict[str, float]:
    from sockserve.lab import ComparePanel

    panel = ComparePanel(workload="io", servers=("plain", "threading", "forking"), clients=8, duration=30, key="bench")
    try:
        panel.run()
        wait_for(lambda: "requests" in panel.model.status().text, 30)
        time.sleep(0.5)
        t0 = time.monotonic()
        panel.stop()
        returned = time.monotonic() - t0
        wait_for(lambda: panel.model.status().state == "stopped", 30)
        partial = time.monotonic() - t0
        # The cell run again while a comparison runs.
        panel.run()
        wait_for(lambda: "requests" in panel.model.status().text, 30)
        time.sleep(0.5)
        t0 = time.monotonic()
        again = ComparePanel(workload="io", servers=("plain",), key="bench")
        rerun = time.monotonic() - t0
        again.close()
        panel.model.wait(30)
    finally:
        panel.close()
    return {"compare_stop_s": returned, "compare_partial_s": partial, "rerun_block_s": rerun}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--neighbour", action="store_true",
                        help="run a busy loop on the same core meanwhile")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    with open("/proc/loadavg") as f:
        print(f"one core ({args.core}); load average before: {' '.join(f.read().split()[:3])}")
    neighbour = None
    if args.neighbour:
        neighbour = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
        print(f"busy neighbour pid {neighbour.pid} on the same core")
    rows: list[dict[str, float]] = []
    try:
        for n in range(args.rounds):
            row = {**traffic_round(), **compare_round()}
            rows.append(row)
            print(f"round {n + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    for key in rows[0]:
        values = [row[key] for row in rows]
        promise = PROMISES.get(key, "")
        print(f"{key:22} median {statistics.median(values):6.2f}  min {min(values):6.2f}  "
              f"max {max(values):6.2f}  {promise}")
    with open("/proc/loadavg") as f:
        print(f"load average after: {' '.join(f.read().split()[:3])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
