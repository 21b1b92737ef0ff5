"""How long does shutdown() take? The standard library against sockserve, side by side.

For each round, both servers start serve_forever(poll_interval) in a thread,
wait a random fraction of a poll interval (so the stdlib's loop is caught at
a random point of its tick), then time shutdown(). Rounds alternate between
the two implementations so machine noise hits both alike.

    python benchmarks/bench_shutdown.py [--rounds 20] [--poll-interval 0.5]
"""

from __future__ import annotations

import argparse
import random
import socketserver
import statistics
import threading
import time

import sockserve


def time_shutdown(server_cls: type, poll_interval: float, settle: float) -> float:
    server = server_cls(("127.0.0.1", 0), socketserver.BaseRequestHandler)
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,))
    thread.start()
    time.sleep(settle)
    began = time.perf_counter()
    server.shutdown()
    took = time.perf_counter() - began
    thread.join()
    server.server_close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results: dict[str, list[float]] = {"socketserver": [], "sockserve": []}
    for _ in range(args.rounds):
        settle = 0.05 + rng.random() * args.poll_interval
        for name, cls in (("socketserver", socketserver.TCPServer), ("sockserve", sockserve.TCPServer)):
            results[name].append(time_shutdown(cls, args.poll_interval, settle))
    print(f"shutdown() latency, poll_interval={args.poll_interval}s, {args.rounds} rounds each")
    for name, values in results.items():
        ms = [v * 1000 for v in values]
        print(f"  {name:13} median {statistics.median(ms):8.3f} ms   max {max(ms):8.3f} ms")
    ratio = statistics.median(results["socketserver"]) / statistics.median(results["sockserve"])
    print(f"  median ratio socketserver/sockserve: {ratio:.0f}x")


if __name__ == "__main__":
    main()
