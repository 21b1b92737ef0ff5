"""sockserve against the standard library's socketserver, on the same workload.

Each server (plain, threading, forking; from socketserver and from sockserve)
serves an echo handler in its own process; the load generator (its own
process too) drives it with new-connection-per-request clients for a few
seconds. The server's CPU time (user + system, read from /proc, children
included for forking) is divided by the requests it answered. Rounds
interleave the two implementations so machine noise hits both alike, and the
report gives, per concurrency model, the medians and the ratios.

Both sides run from compiled bytecode, as an installed package does: the
servers share a bytecode cache in a temporary folder (PYTHONPYCACHEPREFIX),
filled before the first round. Without it, a source tree run with
PYTHONDONTWRITEBYTECODE=1 compiles sockserve in every server process while
the standard library loads its .pyc; the compiler leaves ~1.6 MB more in the
server's heap, and every fork copies its page tables (forking measured
1.11-1.12x that way, 1.02-1.09x from bytecode, same machine, same hour).

    python benchmarks/bench_vs_stdlib.py [--rounds 3] [--duration 2] [--clients 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import signal
import statistics
import subprocess
import sys
import textwrap

from sockserve.load import LoadSpec, run_load

SERVER = textwrap.dedent(
    """
    import importlib, signal, sys, threading
    module = importlib.import_module(sys.argv[1])
    cls = getattr(module, sys.argv[2])

    class Echo(module.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                self.wfile.write(line)

    server = cls(("127.0.0.1", 0), Echo)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    print(server.server_address[1], flush=True)
    server.serve_forever()
    server.server_close()
    """
)

KINDS = {"plain": "TCPServer", "threading": "ThreadingTCPServer", "forking": "ForkingTCPServer"}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime + reaped children's cutime + cstime of *pid*."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / TICKS


def bytecode_env(cache: str) -> dict[str, str]:
    """The servers' environment: bytecode read from and written to *cache*, for
    both modules alike, filled here once (so no round pays for compiling)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    subprocess.run([sys.executable, "-c", "import socketserver, sockserve"], env=env, check=True)
    return env


def one_run(module: str, kind: str, duration: float, clients: int, env: dict[str, str]) -> tuple[float, float]:
    """(requests per second, server CPU microseconds per request)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, module, KINDS[kind]], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        before = cpu_seconds(proc.pid)
        result = run_load(
            LoadSpec(("127.0.0.1", port), clients=clients, duration=duration, connection="new",
                     max_requests=1_000_000, timeout=5.0)
        )
        after = cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    ok = max(result.outcomes["ok"], 1)
    return result.throughput_rps, (after - before) / ok * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--kinds", default="plain,threading,forking")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    data: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        env = bytecode_env(cache)
        for _ in range(args.rounds):
            for kind in kinds:
                for module in ("socketserver", "sockserve"):
                    data.setdefault((module, kind), []).append(
                        one_run(module, kind, args.duration, args.clients, env))
    print(f"echo, new connection per request, {args.clients} clients, {args.duration}s x {args.rounds} rounds")
    print(f"{'kind':10} {'module':13} {'req/s':>9} {'CPU us/req':>11}")
    for kind in kinds:
        medians = {}
        for module in ("socketserver", "sockserve"):
            runs = data[(module, kind)]
            rps = statistics.median(r for r, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            medians[module] = (rps, cpu)
            print(f"{kind:10} {module:13} {rps:9.0f} {cpu:11.1f}")
        (s_rps, s_cpu), (o_rps, o_cpu) = medians["socketserver"], medians["sockserve"]
        print(f"{kind:10} {'ratio':13} {o_rps / s_rps:8.2f}x {o_cpu / s_cpu:10.2f}x  (sockserve / socketserver)")


if __name__ == "__main__":
    main()
