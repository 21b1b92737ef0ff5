"""What ``import sockserve`` costs a process, against ``import socketserver``.

Each sample is a fresh interpreter (``python -S -c``: no site packages, so
only the import measured differs) that imports one module and then reads its
own ``/proc/self/status``: RssAnon (the private memory the import made),
VmRSS, and the number of modules loaded. The two imports alternate, and each
figure is the median over ``--repeat`` samples, read from byte code cached
beforehand (not from compiling the source). Also said: the modules
``import sockserve`` loads beyond ``import socketserver``'s, by top-level
package, so a new dependency of the core shows up here.

    python benchmarks/bench_import.py [--repeat 15] [--python PATH]

Issue 26 asks for at most 1 MB (1,024 kB) RssAnon over ``import socketserver``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import sys
import {module}
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
kb = lambda key: int(status[key].split()[0])
import json
print(json.dumps({{"rss_anon": kb("RssAnon"), "vm_rss": kb("VmRSS"), "modules": sorted(sys.modules)}}))
"""


def sample(python: str, module: str, cache: str) -> dict[str, object]:
    # Byte code cached under a private prefix (warmed by an uncounted first
    # sample): compiling the source would be measured otherwise, and whether a
    # checkout has __pycache__ (PYTHONDONTWRITEBYTECODE) would change the figure.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0", "PYTHONPYCACHEPREFIX": cache}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run([python, "-S", "-c", PROBE.format(module=module)], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    samples: dict[str, list[dict[str, object]]] = {"socketserver": [], "sockserve": []}
    with tempfile.TemporaryDirectory(prefix="bench-import-") as cache:
        for module in samples:
            sample(args.python, module, cache)  # compiles and caches the byte code
        for _ in range(args.repeat):
            for module in samples:
                samples[module].append(sample(args.python, module, cache))
    med = {m: {k: statistics.median(int(s[k]) for s in rows)  # type: ignore[call-overload]
               for k in ("rss_anon", "vm_rss")} for m, rows in samples.items()}
    mods = {m: set(rows[0]["modules"]) for m, rows in samples.items()}  # type: ignore[call-overload]
    extra = sorted(mods["sockserve"] - mods["socketserver"])
    by_top: dict[str, int] = {}
    for name in extra:
        top = name.split(".")[0]
        by_top[top] = by_top.get(top, 0) + 1
    version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"Python {version}, median of {args.repeat} fresh interpreters each (python -S):")
    for module in samples:
        print(f"  import {module:<13} RssAnon {med[module]['rss_anon']:>7,.0f} kB   VmRSS {med[module]['vm_rss']:>7,.0f} kB"
              f"   modules {len(mods[module])}")
    over = med["sockserve"]["rss_anon"] - med["socketserver"]["rss_anon"]
    print(f"  sockserve over socketserver: RssAnon +{over:,.0f} kB (goal: at most 1,024 kB), "
          f"VmRSS +{med['sockserve']['vm_rss'] - med['socketserver']['vm_rss']:,.0f} kB, "
          f"{len(extra)} more modules: " + ", ".join(f"{top} {n}" for top, n in sorted(by_top.items())))


if __name__ == "__main__":
    main()
