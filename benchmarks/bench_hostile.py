"""How long does shutdown() take when idle clients hold every worker?

For each server class, idle clients connect (they send nothing) until the
serving loop waits for a free worker: a full thread pool with overflow
"block", the forking server at max_children, every prefork worker busy, or
one thread per client. Then shutdown() is timed, from another thread, with the
standard library's default poll_interval (0.5 s): a loop that only notices
the request on its next tick takes up to that long. The standard library's ForkingTCPServer and
ThreadingTCPServer are measured beside sockserve's in the same run.

    python benchmarks/bench_hostile.py [--rounds 5] [--clients 6]

shutdown() that waits for a client to leave is cut off after --limit seconds
(the clients are then closed) and printed as "hung".
"""

from __future__ import annotations

import argparse
import socketserver
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import sockserve


POLL = 0.5  # the standard library's default poll_interval

HOLDER = """
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
print("connected", flush=True)
sys.stdin.read()
"""


class Idle(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()  # the client never sends a line


def settings_for(cls: type) -> dict[str, Any]:
    return {
        "max_children": 2, "pool_size": 2, "queue_size": 2, "overflow": "block", "workers": 2,
        "block_on_close": False, "abort_grace": 0.2,
    }


def one_round(cls: type, clients: int, limit: float) -> float | None:
    """Seconds shutdown() took, or None when it did not return within *limit*."""
    server = type(cls.__name__, (cls,), settings_for(cls))(("127.0.0.1", 0), Idle)
    loop = threading.Thread(target=server.serve_forever, args=(POLL,), daemon=True)
    loop.start()
    # Wait for the loop to serve before starting the client process: a
    # prefork server forks its workers as the loop starts, and a fork in one
    # thread while another thread is inside subprocess.Popen leaks Popen's
    # status pipe into the worker, which then hangs Popen.
    began = time.monotonic()
    while getattr(server, "state", sockserve.ServerState.SERVING) is not sockserve.ServerState.SERVING:
        if time.monotonic() - began > 10:
            raise RuntimeError(f"{cls.__name__} did not start serving")
        time.sleep(0.01)
    # The idle clients live in a process of their own, so forked children do
    # not inherit them (they would then never see their client leave).
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(server.server_address[1]), str(clients)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == b"connected\n"
    time.sleep(0.3)  # the loop reaches its blocking point
    result: list[float] = []

    def stop() -> None:
        began = time.perf_counter()
        server.shutdown()
        result.append(time.perf_counter() - began)

    stopper = threading.Thread(target=stop, daemon=True)
    stopper.start()
    stopper.join(limit)
    holder.kill()  # the clients leave: a stdlib loop blocked on a child moves on now
    holder.wait()
    holder.stdout.close()
    assert holder.stdin is not None
    holder.stdin.close()
    stopper.join(10)
    loop.join(10)
    if hasattr(server, "drain"):
        server.drain(0.2)
    server.server_close()
    return result[0] if result and result[0] < limit else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--limit", type=float, default=3.0, help="seconds before a shutdown() counts as hung")
    args = parser.parse_args()
    classes: list[tuple[str, type]] = [
        ("socketserver.ForkingTCPServer", socketserver.ForkingTCPServer),
        ("sockserve.ForkingTCPServer", sockserve.ForkingTCPServer),
        ("socketserver.ThreadingTCPServer", socketserver.ThreadingTCPServer),
        ("sockserve.ThreadingTCPServer", sockserve.ThreadingTCPServer),
        ("sockserve.ThreadPoolTCPServer", sockserve.ThreadPoolTCPServer),
        ("sockserve.PreForkTCPServer", sockserve.PreForkTCPServer),
    ]
    print(f"shutdown() with {args.clients} idle clients, poll_interval {POLL} s, {args.rounds} rounds each "
          f"(max_children 2, pool 2 + queue 2 'block', 2 prefork workers)")
    for name, cls in classes:
        times = [one_round(cls, args.clients, args.limit) for _ in range(args.rounds)]
        done = [t * 1000 for t in times if t is not None]
        hung = len(times) - len(done)
        text = f"median {statistics.median(done):8.2f} ms  max {max(done):8.2f} ms" if done else " " * 37
        print(f"  {name:33} {text}  hung {hung}/{len(times)}")


if __name__ == "__main__":
    main()
