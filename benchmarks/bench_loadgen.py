"""The load generator's own ceiling: how many requests per second it can drive.

A measurement of a server is only as good as the client that drives it: if
the generator spends more CPU per request than the server, the figure is
the generator's. This benchmark drives the fastest servers at hand with
sockserve's generator (:func:`sockserve.load.run_load`, in its worker
process) and, side by side in the same rounds, with a minimal hand-written
client loop (threads doing connect/send/recv/close and nothing else, in its
own process), and reports for each:

* closed loop, new connection per request and persistent connections:
  requests per second and the generator's own CPU per request (its process
  CPU time over the run, divided by the requests), medians of the rounds,
  and the ratios sockserve / minimal;
* open loop: offered rates from low to beyond the ceiling; for each, the
  rate achieved, the requests never sent (``unsent``: the generator fell
  behind its schedule) and whether the rate was *held* (nothing unsent and
  at least 95% of the offered rate answered). The highest held rate is the
  open-loop ceiling.

Servers: a minimal epoll echo server in C (compiled here with ``cc``, when
there is one: a server that costs almost nothing, so the client is the
limit) and sockserve's pre-forking server (``prefork``, the fastest the
workbook measures on echo).

    python benchmarks/bench_loadgen.py [--rounds 5] [--duration 2] [--clients 8]
                                      [--servers c,prefork] [--plot ceiling.png]

Rounds interleave the two generators so machine noise hits both alike. Run
it on a quiet machine; it prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any

from sockserve.measure.experiment import ServerProcess
from sockserve.load import LoadSpec, run_load

C_SERVER = r"""
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>

/* Echo every byte back; close on EOF. One thread, edge-free epoll. */
int main(void) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); a.sin_port = 0;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096)) { perror("bind"); return 1; }
    socklen_t len = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &len);
    printf("%d\n", ntohs(a.sin_port)); fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    char buf[65536];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c = accept(lfd, NULL, NULL);
                if (c < 0) continue;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                continue;
            }
            ssize_t got = read(fd, buf, sizeof buf);
            if (got <= 0) { close(fd); continue; }
            ssize_t off = 0;
            while (off < got) { ssize_t w = write(fd, buf + off, got - off); if (w <= 0) break; off += w; }
        }
    }
}
"""

# The minimal client: the least a Python client can do per request.
MINIMAL_CLIENT = textwrap.dedent(
    """
    import json, socket, sys, threading, time
    host, port, clients, duration, persistent = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                                 float(sys.argv[4]), sys.argv[5] == "persistent")
    address = (host, port)
    counts = [0] * clients
    go = threading.Event()

    def loop(i):
        go.wait()
        end = time.perf_counter() + duration
        n = 0
        if persistent:
            s = socket.create_connection(address)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while time.perf_counter() < end:
                s.sendall(b"echo\\n")
                reply = s.recv(65536)
                while not reply.endswith(b"\\n"):
                    reply += s.recv(65536)
                n += 1
            s.close()
        else:
            while time.perf_counter() < end:
                s = socket.create_connection(address)
                s.sendall(b"echo\\n")
                s.shutdown(socket.SHUT_WR)
                reply = s.recv(65536)
                while not reply.endswith(b"\\n"):
                    reply += s.recv(65536)
                s.close()
                n += 1
        counts[i] = n

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    cpu0, t0 = time.process_time(), time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    print(json.dumps({"requests": sum(counts), "elapsed": time.perf_counter() - t0,
                      "cpu": time.process_time() - cpu0}))
    """
)


class CServer:
    """The C echo server in a child process."""

    def __init__(self, workdir: str) -> None:
        source = os.path.join(workdir, "echo.c")
        binary = os.path.join(workdir, "echo")
        with open(source, "w") as f:
            f.write(C_SERVER)
        subprocess.run(["cc", "-O2", "-o", binary, source], check=True)
        self.proc = subprocess.Popen([binary], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.address = ("127.0.0.1", int(self.proc.stdout.readline()))
        self.pid = self.proc.pid

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_server(name: str, workdir: str) -> Any:
    if name == "c":
        return CServer(workdir)
    server = ServerProcess(name, "echo")
    server.report_every = None
    return server.start()


def sockserve_closed(address: Any, clients: int, duration: float, connection: str) -> dict[str, float]:
    result = run_load(LoadSpec(address, clients=clients, duration=duration, connection=connection,
                               max_requests=10_000_000), bar=False)
    return {"rps": result.throughput_rps, "cpu_us": 1e6 * (result.generator_cpu_s or 0.0) / max(1, result.requests),
            "errors": float(result.errors)}


def minimal_closed(address: Any, clients: int, duration: float, connection: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", MINIMAL_CLIENT, address[0], str(address[1]), str(clients), str(duration),
         connection], capture_output=True, text=True, timeout=duration + 60, check=True)
    data = json.loads(out.stdout)
    return {"rps": data["requests"] / data["elapsed"], "cpu_us": 1e6 * data["cpu"] / max(1, data["requests"]),
            "errors": 0.0}


def open_loop(address: Any, rate: float, duration: float) -> dict[str, Any]:
    result = run_load(LoadSpec(address, mode="open", rate=rate, clients=64, duration=duration,
                               max_requests=10_000_000), bar=False)
    achieved = result.ok / max(result.elapsed, 1e-9)
    held = result.unsent == 0 and result.errors == 0 and achieved >= 0.95 * rate
    return {"rate": rate, "achieved": achieved, "unsent": result.unsent, "errors": result.errors,
            "p99_ms": result.latency_ms()["p99"], "held": held,
            "cpu_us": 1e6 * (result.generator_cpu_s or 0.0) / max(1, result.requests)}


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--servers", default="c,prefork")
    parser.add_argument("--rates", default="1000,2000,4000,6000,8000,12000,16000")
    parser.add_argument("--plot", default=None, help="write the open-loop ceiling figure here")
    parser.add_argument("--json", default=None, help="write every figure as JSON here")
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s and (s != "c" or shutil.which("cc"))]
    print(f"load average before: {load_average()}; cores: {len(os.sched_getaffinity(0))}", flush=True)
    report: dict[str, Any] = {"closed": {}, "open": {}}
    workdir = tempfile.mkdtemp(prefix="bench-loadgen-")
    try:
        for name in servers:
            server = start_server(name, workdir)
            try:
                for connection in ("new", "persistent"):
                    runs: dict[str, list[dict[str, float]]] = {"sockserve": [], "minimal": []}
                    for _ in range(args.rounds):
                        runs["sockserve"].append(sockserve_closed(server.address, args.clients,
                                                                  args.duration, connection))
                        runs["minimal"].append(minimal_closed(server.address, args.clients,
                                                              args.duration, connection))
                    medians = {gen: {k: statistics.median(r[k] for r in rs) for k in ("rps", "cpu_us")}
                               for gen, rs in runs.items()}
                    report["closed"][f"{name}/{connection}"] = {"medians": medians, "rounds": runs}
                    s, m = medians["sockserve"], medians["minimal"]
                    print(f"{name:8} {connection:10} closed, {args.clients} clients: sockserve "
                          f"{s['rps']:8.0f} req/s {s['cpu_us']:6.1f} us/req | minimal {m['rps']:8.0f} req/s "
                          f"{m['cpu_us']:6.1f} us/req | ratio rps {s['rps'] / m['rps']:.2f}, "
                          f"cpu {s['cpu_us'] / m['cpu_us']:.2f}", flush=True)
                rows = []
                for rate in (float(r) for r in args.rates.split(",")):
                    row = open_loop(server.address, rate, args.duration)
                    rows.append(row)
                    print(f"{name:8} open loop {rate:8.0f}/s offered: {row['achieved']:8.0f}/s answered, "
                          f"{row['unsent']:6d} unsent, p99 {row['p99_ms']:8.2f} ms, "
                          f"{row['cpu_us']:6.1f} us/req: {'held' if row['held'] else 'NOT HELD'}",
                          flush=True)
                held = [r["rate"] for r in rows if r["held"]]
                report["open"][name] = {"rows": rows, "ceiling": max(held) if held else None}
                print(f"{name:8} open-loop ceiling (highest rate held): "
                      f"{max(held) if held else 'none held'}", flush=True)
            finally:
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average after: {load_average()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.plot:
        plot_ceiling(report, args.plot)
        print(f"wrote {args.plot}")
    return 0


def plot_ceiling(report: dict[str, Any], path: str) -> None:
    """Offered vs answered rate in the open loop; rates not held are marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.ioff():
        fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    top = 0.0
    for i, (name, data) in enumerate(report["open"].items()):
        rows = data["rows"]
        xs = [r["rate"] for r in rows]
        ys = [r["achieved"] for r in rows]
        top = max(top, *xs, *ys)
        ax.plot(xs, ys, color=f"C{i}", marker="os^D"[i % 4], label=f"answered ({name} server)")
        bad = [(r["rate"], r["achieved"]) for r in rows if not r["held"]]
        if bad:
            ax.scatter(*zip(*bad), s=140, facecolors="none", edgecolors="red", linewidths=1.5,
                       label="not held (unsent or below 95%)" if i == 0 else None, zorder=3)
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="offered = answered")
    ax.set_xlabel("offered rate (requests per second, open loop)")
    ax.set_ylabel("answered (requests per second)")
    ax.set_title("The load generator's open-loop ceiling")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize="small", frameon=False)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
