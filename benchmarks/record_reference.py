"""Record the reference run lesson 04 shows beside the student's own.

    python benchmarks/record_reference.py                      # notebooks/data/concurrency-reference.json
    python benchmarks/record_reference.py --out /tmp/ref.json --duration 2
    python benchmarks/record_reference.py --provisional --note "recorded on a busy 2-core machine"

Runs lesson 04's cpu comparison (plain, threading, forking: 10 ms of CPU per
request, 4 clients, in interleaved rounds) and the convoy (short requests
beside CPU-bound ones), measures what other programs took meanwhile, and
writes both with the machine's cores, load average and Python
(:mod:`sockserve.measure.reference`). Record it on a quiet machine with two
cores or more: the script refuses (exit status 1, nothing written) when other
programs took 10% or more of the usable cores, or when there is a single
core, unless ``--provisional`` marks the file as a stand-in to be recorded
again. It prints the figures and the sentences the lesson will print.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sockserve.measure.conclusions import report  # noqa: E402
from sockserve.measure.convoy import convoy_report  # noqa: E402
from sockserve.measure.reference import REFERENCE_FILE, record_reference  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "notebooks" / REFERENCE_FILE), help="where to write the JSON")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load per server (default 3)")
    parser.add_argument("--provisional", action="store_true",
                        help="write it even from a busy or single-core machine, marked provisional")
    parser.add_argument("--note", default="", help="a note stored with it (why it is provisional, say)")
    args = parser.parse_args(argv)
    reference = record_reference(duration=args.duration, provisional=args.provisional, note=args.note)
    print(reference.label())
    print(reference.cpu.table())
    print(report(reference.cpu))
    if reference.convoy is not None:
        print(convoy_report(reference.convoy))
    cores = reference.recorded.get("usable_cores") or 0
    if not args.provisional and (not reference.quiet or cores < 2):
        why = "other programs took too much of the cores" if not reference.quiet else "it has a single core"
        print(f"record_reference: not written: {why}; measure on a quiet machine with two cores or more, "
              "or pass --provisional", file=sys.stderr)
        return 1
    reference.save(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
