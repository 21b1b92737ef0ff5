"""Bounded pools against the standard library's per-request concurrency.

Three measurements, each side by side in one run, reported as ratios:

1. echo, a new connection per request, 8 clients: ThreadPoolTCPServer vs
   ThreadingTCPServer (goal: at least 1.3x the throughput);
2. the same load: PreForkTCPServer vs ForkingTCPServer (goal: at least 3x);
3. 500 idle connections held open: the threads a ThreadPoolTCPServer holds
   (goal: at most pool_size + 5) vs ThreadingTCPServer (about 500).

asyncio (``AsyncioServer``) runs the same echo load as a reference. Every
server runs in its own process (``python -m sockserve serve KIND``), the
load generator in another; rounds interleave the kinds so machine noise hits
them alike, and medians are reported. Each run is bounded by --duration and
--max-requests.

    python benchmarks/bench_pools.py [--rounds 3] [--duration 2] [--clients 8]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

from sockserve import ThreadPoolTCPServer
from sockserve.measure.experiment import ServerProcess
from sockserve.load import LoadSpec, run_load

PAIRS = (("threadpool", "threading", 1.3), ("prefork", "forking", 3.0))
REFERENCE = ("asyncio",)


def throughput(kind: str, duration: float, clients: int, max_requests: int) -> float:
    """Requests per second of *kind* serving echo, new connection per request."""
    with ServerProcess(kind, "echo") as server:
        address = server.address
        result = run_load(
            LoadSpec(
                address=tuple(address) if isinstance(address, list) else address,
                workload="echo",
                clients=clients,
                duration=duration,
                max_requests=max_requests,
                connection="new",
                timeout=5.0,
            )
        )
    if result.errors:
        print(f"  note: {kind}: {result.errors} of {result.requests} requests failed {result.outcomes}")
    return result.throughput_rps


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError("no Threads: line")


def threads_under_idle(kind: str, connections: int, settle: float = 10.0) -> int:
    """Most threads the server process holds while *connections* idle
    clients stay connected (sampled until it stops growing or *settle* s)."""
    with ServerProcess(kind, "echo") as server:
        assert server.pid is not None
        host, port = server.address
        opened: list[socket.socket] = []
        try:
            for _ in range(connections):
                opened.append(socket.create_connection((host, port), timeout=5))
            peak, last_change = 0, time.monotonic()
            deadline = time.monotonic() + settle
            while time.monotonic() < deadline and time.monotonic() - last_change < 1.0:
                now = threads_of(server.pid)
                if now > peak:
                    peak, last_change = now, time.monotonic()
                time.sleep(0.05)
        finally:
            for sock in opened:
                sock.close()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--idle", type=int, default=500, help="idle connections for test 3")
    args = parser.parse_args()

    kinds = [k for pair in PAIRS for k in pair[:2]] + list(REFERENCE)
    rps: dict[str, list[float]] = {k: [] for k in kinds}
    for round_number in range(args.rounds):
        for kind in kinds:
            rps[kind].append(throughput(kind, args.duration, args.clients, args.max_requests))
        print(f"round {round_number + 1}: " + ", ".join(f"{k} {rps[k][-1]:.0f}" for k in kinds))
    medians = {k: statistics.median(v) for k, v in rps.items()}

    print(
        f"\necho, new connection per request, {args.clients} clients, "
        f"{args.duration}s x {args.rounds} rounds (median req/s)"
    )
    for kind in kinds:
        print(f"  {kind:11} {medians[kind]:9.0f}")
    verdicts = []
    for pool, stdlib, goal in PAIRS:
        ratio = medians[pool] / medians[stdlib]
        verdicts.append(ratio >= goal)
        print(f"  {pool} / {stdlib}: {ratio:.2f}x (goal >= {goal}x) {'ok' if ratio >= goal else 'MISSED'}")

    pool_threads = threads_under_idle("threadpool", args.idle)
    threading_threads = threads_under_idle("threading", args.idle)
    bound = ThreadPoolTCPServer.pool_size + 5
    print(f"\n{args.idle} idle connections (threads in the server process, peak)")
    print(f"  threadpool  {pool_threads:5d}  (goal <= pool_size + 5 = {bound})")
    print(f"  threading   {threading_threads:5d}")
    print(f"  threading / threadpool: {threading_threads / pool_threads:.1f}x")
    verdicts.append(pool_threads <= bound)
    print("\nall goals met" if all(verdicts) else "\nSOME GOALS MISSED")


if __name__ == "__main__":
    main()
