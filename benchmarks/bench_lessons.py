"""How long each lesson takes to run (Run All), pinned to one core.

The teacher's guide (notebooks/TEACHING.md) states the minutes each lesson
takes; the machine part of that is measured here: each lesson is executed
top to bottom with nbclient in a fresh kernel, the kernel and everything it
starts (servers, load workers, children) pinned to one core with
``taskset -c CORE``, on a copy of the workbook in a temporary folder (the
repository's notebooks are not touched).

    python benchmarks/bench_lessons.py [--core 0] [--lessons 01-architecture,04-concurrency]
                                       [--json PATH]

Figures are wall-clock seconds and depend on the machine's load: the script
prints the load average before and after each lesson; on a shared machine
say so next to the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

#: Runs inside ``taskset``: execute one notebook, print the seconds it took.
RUNNER = """
import sys, time, nbformat
from nbclient import NotebookClient
path, timeout = sys.argv[1], float(sys.argv[2])
nb = nbformat.read(path, as_version=4)
began = time.monotonic()
NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
               resources={"metadata": {"path": str(__import__("pathlib").Path(path).parent)}}).execute()
print(f"{time.monotonic() - began:.2f}")
"""


def run_lesson(folder: Path, stem: str, core: int, timeout: float) -> dict[str, object]:
    before = os.getloadavg()
    began = time.monotonic()
    proc = subprocess.run(["taskset", "-c", str(core), sys.executable, "-c", RUNNER,
                           str(folder / f"{stem}.ipynb"), str(timeout)],
                          capture_output=True, text=True, timeout=timeout * 40)
    wall = time.monotonic() - began
    after = os.getloadavg()
    ok = proc.returncode == 0
    return {"lesson": stem, "ok": ok, "execute_s": float(proc.stdout.strip().splitlines()[-1]) if ok else None,
            "wall_s": round(wall, 2), "load_before": before[0], "load_after": after[0],
            "error": None if ok else proc.stderr.strip().splitlines()[-1:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--lessons", default="", help="comma-separated stems (default: every lesson)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds per cell")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    stems = [s for s in args.lessons.split(",") if s] or sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    folder = Path(tempfile.mkdtemp(prefix="sockserve-lessons-"))
    results = []
    try:
        for pattern in ("*.ipynb", "data/*.json"):
            for path in NOTEBOOKS.glob(pattern):
                target = folder / path.relative_to(NOTEBOOKS)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        print(f"{os.cpu_count()} cores on this machine; each lesson pinned to core {args.core}")
        for stem in stems:
            result = run_lesson(folder, stem, args.core, args.timeout)
            results.append(result)
            shown = f"{result['execute_s']:7.1f} s" if result["ok"] else f"FAILED {result['error']}"
            print(f"{stem:32} {shown}   load average {result['load_before']:.2f} -> {result['load_after']:.2f}",
                  flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
