# %% [markdown]
# # 07 · Building on sockserve
#
# **The question.** sockserve keeps the standard library's classes, attributes and hooks. What does that let you
# build, and where do you plug in? Three examples: a real HTTP server (`http.server`) running on sockserve, an
# allowlist in the `verify_request` hook, and a bound on how many requests run at once, which the standard
# library's threading server does not have.

# %%
# %matplotlib inline
import http.client
import subprocess
import sys
from http.server import BaseHTTPRequestHandler

import sockserve
from sockserve.measure.conclusions import report
from sockserve.measure.experiment import compare
from sockserve.plots import plot_comparison
from sockserve.workbook import ask, background, show
from sockserve.workbook.sentences import failures
from sockserve.measure.workloads import handler_for

# %% [markdown]
# ## 1. `http.server` on sockserve
#
# `http.server.HTTPServer` is a subclass of `socketserver.TCPServer`, and its request handlers are
# `socketserver.StreamRequestHandler`s. Because sockserve has the same names, one line before anything imports
# `socketserver` moves the whole standard HTTP server onto sockserve. We try it in a fresh Python process (this
# notebook's `http.server`, if already imported, keeps its original base classes):

# %%
program = """
import sys, sockserve
sys.modules["socketserver"] = sockserve      # the one line
import http.server
for cls in http.server.ThreadingHTTPServer.__mro__[:5]:
    print(f"{cls.__module__}.{cls.__name__}")
"""
print(subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout)


# %% [markdown]
# Without swapping modules, a handler from `http.server` also runs on any sockserve server class directly: the
# handler only needs the socket, the client's address and the server. Here a `ThreadingTCPServer` serves a small
# handler; `log_message` is overridden because `BaseHTTPRequestHandler` writes a log line to stderr for every request.

# %%
class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {type(self.server).__name__}: you asked for {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # keep the notebook quiet


def get(server, path):
    """GET *path* from *server* with the standard library's HTTP client: (status, body)."""
    connection = http.client.HTTPConnection(*server.server_address, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


web = sockserve.ThreadingTCPServer(("127.0.0.1", 0), Hello)
with background(web):
    for path in ("/", "/lessons/07"):
        print(get(web, path))
snapshot = web.stats.snapshot()
print(f"accepted {snapshot['accepted']}, completed {snapshot['completed']}, errors {snapshot['errors']}")


# %% [markdown]
# The statistics came for free: every sockserve server counts what it accepts and how each request ends, whatever
# the handler. (Exercise 2 serves them over HTTP.)
#
# ## 2. `verify_request`: refuse before spending anything
#
# One request goes through the server's hooks in a fixed order:
#
# ```
# get_request()  ->  verify_request()  ->  process_request()  ->  finish_request()  ->  handler
# ```
#
# `verify_request(request, client_address)` runs in the serving thread, after `accept()` and **before**
# `process_request` starts a thread or forks a child. Returning `False` closes the connection at once: the refused
# client costs no thread, no process and no handler. Here a server that can be put into maintenance mode:

# %%
class Maintenance(sockserve.ThreadingTCPServer):
    open_for_business = True

    def verify_request(self, request, client_address):
        return self.open_for_business


def try_ask(address, line):
    """The server's reply lines, or what happened instead."""
    try:
        return ask(address, line) or "closed without a reply"
    except OSError:  # closed before our request was even read: a reset, or "not connected"
        return "closed without a reply"


shop = Maintenance(("127.0.0.1", 0), handler_for("echo"))
with background(shop):
    print("open:  ", try_ask(shop.server_address, b"hello\n"))
    shop.open_for_business = False
    print("closed:", try_ask(shop.server_address, b"hello\n"))
snapshot = shop.stats.snapshot()
print(f"accepted {snapshot['accepted']}, rejected {snapshot['rejected']}, handlers started {snapshot['started']}")

# %% [markdown]
# The refused client got no reply, and the server counted the refusal in
# `stats.rejected` without starting a handler. `client_address` is the natural thing to decide on: Exercise 1 turns
# this into an allowlist of IP addresses.
#
# ## 3. Bounded concurrency, where it exists
#
# `ThreadingMixIn` starts one thread per request, with no limit: a burst of a thousand slow clients makes a thousand
# threads. The bounds that exist are class attributes:

# %%
print("ThreadingMixIn : no bound (one thread per request)")
print(f"ForkingMixIn   : max_children = {sockserve.ForkingMixIn.max_children} (waits for a child to end before forking more)")
print(f"ThreadPoolMixIn: pool_size = {sockserve.ThreadPoolMixIn.pool_size} threads, queue_size = "
      f"{sockserve.ThreadPoolMixIn.queue_size}, overflow = {sockserve.ThreadPoolMixIn.overflow!r} (sockserve only)")
print(f"PreForkMixIn   : workers = {sockserve.PreForkMixIn.workers} processes, forked once at start (sockserve only)")

# %% [markdown]
# The standard library has the first two; sockserve adds a thread pool and a pre-forked process pool. Here are three
# of them under the same load: 24 clients, each request waiting 50 ms.

# %% tags=["nbval-ignore-output"]
bounded = compare("io", servers=("threading", "threadpool", "prefork"), clients=24, duration=1.0,
                  workload_params={"delay_ms": 50})
show(plot_comparison(bounded))
workers = {"threading": 24, "threadpool": sockserve.ThreadPoolMixIn.pool_size, "prefork": sockserve.PreForkMixIn.workers}
for run in bounded.runs:
    cap = workers[run.server] / 0.050   # at most this many requests of 50 ms at once, each 50 ms
    print(f"{run.server:10} {workers[run.server]:2} at once: at most {cap:4.0f} req/s, measured "
          f"{run.throughput_rps:4.0f} req/s, median latency {run.latency_ms['p50']:4.0f} ms; {failures(run)}")
print(report(bounded, baseline="threading"))

# %% [markdown]
# **What to look for.**
#
# * *Threads and children* (right): the threading server's thread count follows the clients; the pool stays at its
#   size however many clients come; the pre-forked server keeps its few worker processes.
# * *Throughput and latency*: a bound is a trade. With 24 clients and 8 threads, each worker serves its requests one
#   after another: requests wait in the queue, so throughput is capped near `pool_size / 50 ms` and latency grows.
#   With 4 worker processes, the cap is lower again. The lines under the figure give each cap beside what your
#   machine measured. The unbounded server can go furthest here, and would be the first to run out of memory or
#   threads under a larger burst.
# * *Errors*: a request still waiting for a worker when the run's time is up gets a short grace, then counts as a
#   failure (a *timeout*, "still in flight when the run ended"). The more requests wait in a queue, the more are
#   caught that way; the lines under the figure count them for each server.
#
# A bound turns overload into waiting (or, with `overflow = "reject"`, into refusals counted in `stats.overflows`)
# instead of into an ever-growing number of threads. Choose the bound from what the machine can hold, and measure
# the latency it costs.
#
# ## Exercises
#
# Reference solutions: `solutions/07-building-on-sockserve.py` (a teacher's copy: `sockserve lab --solutions`).
# A check first says what your code did and which idea it misses; if the same exercise fails again, it also says
# what to change.
#
# **Exercise 1.** Finish `AllowlistServer`: only clients whose IP address is in `allowed` are served; any other
# connection is closed before a handler runs (and so counted in `stats.rejected`).

# %%
from sockserve.exercises import check


class AllowlistServer(sockserve.ThreadingTCPServer):
    allowed = {"127.0.0.1"}
    # your code here: verify_request


check("building-allowlist", AllowlistServer)


# %% [markdown]
# **Exercise 2.** Finish `StatsHandler`: `GET /stats` answers `200` with the server's live statistics
# (`self.server.stats.snapshot()`) as JSON, with the header `Content-Type: application/json`; any other path answers
# `404`.

# %%
class StatsHandler(BaseHTTPRequestHandler):
    pass  # your code here: do_GET


check("building-http-stats", StatsHandler)


# %% [markdown]
# **Exercise 3.** Write `BoundedServer`, a sockserve TCP server class that never runs more than 4 handlers at once,
# yet serves every client of a burst of 10.

# %%
class BoundedServer(sockserve.ThreadingTCPServer):
    pass  # your code here


check("building-bounded", BoundedServer)
