"""What do live statistics cost? Echo with ``server.stats.enabled`` on vs off.

For each server class (TCPServer and ThreadingTCPServer by default) two
servers run, each in its own process: one with statistics on (the default),
one with ``server.stats.enabled = False``. The load generator (a process of
its own) drives each with new-connection-per-request echo clients for a few
seconds, so every request passes through the statistics once. Runs are
interleaved (on/off, then off/on in the next round) so machine noise hits
both alike, and each round gives a paired ratio.

Two figures per class, both "stats on relative to off", 1.00 = free:

* throughput ratio: requests/s with stats on / requests/s with stats off;
* CPU ratio: server CPU per request with stats off / with stats on (the
  server reports its process CPU time on SIGUSR1; CPU per request is much
  steadier than throughput on a busy machine).

The target is >= 0.97 for both. Usage::

    python benchmarks/bench_stats.py [--rounds 4] [--duration 2] [--clients 4]
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Iterator

from sockserve.load import LoadSpec, run_load

SERVER = textwrap.dedent(
    """
    import signal, sys, threading, time
    import sockserve
    from sockserve.workloads import EchoHandler

    server = getattr(sockserve, sys.argv[1])(("127.0.0.1", 0), EchoHandler)
    server.stats.enabled = sys.argv[2] == "on"
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    # On SIGUSR1, report this process's CPU time (all threads, those that
    # ended included; nanosecond clock, unlike /proc's 10 ms ticks).
    signal.signal(signal.SIGUSR1, lambda *a: print(time.process_time(), flush=True))
    print(server.server_address[1], flush=True)
    server.serve_forever()
    server.server_close()
    """
)

TARGET = 0.97


class Server:
    """A server process of class *name* with statistics *on* or off."""

    def __init__(self, name: str, stats_on: bool) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, name, "on" if stats_on else "off"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def run(self, duration: float, clients: int) -> tuple[float, float]:
        """Drive it for *duration* s: (requests/s, server CPU us per request)."""
        before = self.cpu_seconds()
        result = run_load(
            LoadSpec(
                ("127.0.0.1", self.port),
                clients=clients,
                duration=duration,
                connection="new",
                max_requests=1_000_000,
                timeout=5.0,
            )
        )
        after = self.cpu_seconds()
        ok = result.outcomes.get("ok", 0)
        if ok == 0 or result.requests != ok:
            raise RuntimeError(f"load run failed: {result.outcomes}")
        return result.throughput_rps, (after - before) / ok * 1e6

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far, as it reports it."""
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGUSR1)
        return float(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def servers(names: list[str]) -> Iterator[dict[tuple[str, bool], Server]]:
    started: dict[tuple[str, bool], Server] = {}
    try:
        for name in names:
            for on in (True, False):
                started[(name, on)] = Server(name, on)
        yield started
    finally:
        for server in started.values():
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per run")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--classes", default="TCPServer,ThreadingTCPServer")
    args = parser.parse_args()
    if not (1 <= args.rounds <= 20 and 0.2 <= args.duration <= 10):
        parser.error("keep it bounded: 1..20 rounds of 0.2..10 s")
    names = args.classes.split(",")
    runs: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    print(
        f"echo, new connection per request, {args.clients} clients, "
        f"{args.duration:g} s per run, {args.rounds} rounds, interleaved"
    )
    with servers(names) as running:
        for round_no in range(args.rounds):
            order = (True, False) if round_no % 2 == 0 else (False, True)
            for name in names:
                for on in order:
                    rps, cpu = running[(name, on)].run(args.duration, args.clients)
                    runs.setdefault((name, on), []).append((rps, cpu))
                    print(
                        f"  round {round_no + 1} {name:20} stats {'on ' if on else 'off'} "
                        f"{rps:8.0f} req/s {cpu:8.1f} CPU us/req",
                        flush=True,
                    )
    print(f"{'server':20} {'stats':6} {'req/s':>9} {'CPU us/req':>11}")
    worst = float("inf")
    for name in names:
        for on in (True, False):
            rps = statistics.median(r for r, _ in runs[(name, on)])
            cpu = statistics.median(c for _, c in runs[(name, on)])
            print(f"{name:20} {'on' if on else 'off':6} {rps:9.0f} {cpu:11.1f}")
        paired = list(zip(runs[(name, True)], runs[(name, False)]))
        rps_ratios = [on[0] / off[0] for on, off in paired]
        cpu_ratios = [off[1] / on[1] for on, off in paired]
        rps_ratio = statistics.median(rps_ratios)
        cpu_ratio = statistics.median(cpu_ratios)
        worst = min(worst, rps_ratio, cpu_ratio)
        print(
            f"{name:20} ratio  throughput {rps_ratio:.3f} "
            f"(rounds {min(rps_ratios):.3f}..{max(rps_ratios):.3f}), "
            f"CPU {cpu_ratio:.3f} (rounds {min(cpu_ratios):.3f}..{max(cpu_ratios):.3f})"
        )
    verdict = "meets" if worst >= TARGET else "misses"
    print(f"stats on / off: worst median ratio {worst:.3f}, {verdict} the target {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
