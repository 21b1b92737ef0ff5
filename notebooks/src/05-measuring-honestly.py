# %% [markdown]
# # 05 · Measuring honestly
#
# **The question.** A load test reports a median latency of about a millisecond. Is that what the users of the server
# will see? Not necessarily: three common mistakes make a server look better than it is, and each hides the slow
# requests, which are the ones users notice.
#
# 1. A **closed-loop** load generator waits for each reply before it sends the next request, so when the server
#    stalls it stops sending, and the requests that would have waited are never measured (*coordinated omission*).
# 2. An **average** mixes a few very slow requests with many fast ones into a number that describes neither.
# 3. A **listen backlog** that is too short drops part of a burst of new connections: those clients wait for their
#    kernels to try again, about **a second** later, or their connection is **reset** and the request is lost. The
#    server never sees either.
#
# We measure each one on your machine, and then what sockserve's own counting costs each request.

# %%
# %matplotlib inline
import socket
import socketserver

import sockserve
from sockserve.workbook.backlog import compare_backlogs, describe_backlog, plot_backlog
from sockserve.measure.conclusions import latency_sentences
from sockserve.measure.experiment import RunResult, ServerProcess
from sockserve.load import LoadSpec, run_load
from sockserve.plots import plot_latency
from sockserve.plots.latency import describe_latency_over_time, plot_latency_over_time
from sockserve.workbook import ask, background, show
from sockserve.workbook.sentences import slowest_against_work

# %% [markdown]
# ## 1. Closed loop and open loop
#
# The server is a plain one (one request at a time) serving the `mixed` workload: the client sends one request in ten
# as `cpu 50` (50 ms of work) and the rest as `cpu 1`. It runs in its own process; so does the load generator.
#
# First a **closed loop** with one client: send, wait for the reply, send the next. That also tells us how many
# requests per second this server manages on your machine.

# %% tags=["nbval-ignore-output"]
server = ServerProcess("plain", "mixed").start()
closed = run_load(LoadSpec(server.address, workload="mixed", clients=1, duration=1.5, server_pid=server.pid))
print(closed.summary())

# %% [markdown]
# Now an **open loop**: requests are *scheduled* at a fixed rate, whatever the server does, the way independent users
# arrive. We ask for only 70% of the rate the closed loop just achieved, so on average the server has time to spare.
# Latency is counted from each request's scheduled time, so a request that had to wait for an earlier one counts its
# wait.

# %% tags=["nbval-ignore-output"]
rate = 0.7 * closed.throughput_rps
opened = run_load(LoadSpec(server.address, workload="mixed", mode="open", rate=rate, clients=64,
                           duration=1.5, server_pid=server.pid))
server.stop()
print(opened.summary())

# %% tags=["nbval-ignore-output"]
runs = [RunResult.from_load("closed loop, 1 client", closed),
        RunResult.from_load("open loop, 70% of that rate", opened)]
show(plot_latency(runs))
closed_ms, open_ms = closed.latency_ms(), opened.latency_ms()
ratio = open_ms["p50"] / closed_ms["p50"]
print(f"median: closed loop {closed_ms['p50']:.1f} ms, open loop {open_ms['p50']:.1f} ms (the open loop's "
      + (f"{ratio:.1f} times as long" if ratio >= 1 else f"shorter, {ratio:.2f} times") + "); "
      f"p90: {closed_ms['p90']:.1f} ms and {open_ms['p90']:.1f} ms")

# %% [markdown]
# **What to look for.** Same server, same requests, and the open loop asks for *less* work per second. Compare the
# two lines, and the medians printed under them: which loop's requests took longer, the slow ones only or the fast
# ones too?
#
# In the closed loop, while a 50 ms request runs, the single client waits for it, and sends nothing. The requests a
# real user would have sent meanwhile are not delayed; they are **never sent**, so they are never measured: the
# load generator coordinates with the server and omits exactly the bad moments. In the open loop they are sent on
# schedule, queue behind the slow request, and their latency counts the queueing. Here is each request's latency
# against the time it was due:

# %% tags=["nbval-ignore-output"]
loops = {"closed loop": closed, "open loop": opened}
show(plot_latency_over_time(loops), describe_latency_over_time(loops))

# %% [markdown]
# In the open loop, look for a slow request followed by a slope of requests that waited less and less for it: they
# were due while it ran. To measure a server honestly, send at a rate (open loop) and count from the scheduled time,
# as `sockserve.load` does with `mode="open"`; a closed loop tells you the latency of one client that politely
# waits, not of a crowd.
#
# ## 2. Percentiles, not averages
#
# Back to the closed loop. It had one client, so no request ever waited behind another in the server. One request in
# ten asks for 50 ms of work and the others for 1 ms. Here are its percentiles in words, as measured, what the
# slowest request says about your machine, and what the mean says:

# %% tags=["nbval-ignore-output"]
ms = closed.latency_ms()
latencies = [latency for _, latency in closed.timeline]
slower = sum(1 for latency in latencies if latency > ms["mean"])
print("\n".join(latency_sentences(closed)))
print(slowest_against_work(closed, work_ms=50))
print(f"The mean is {ms['mean']:.2f} ms, {ms['mean'] / ms['p50']:.1f} times the median; "
      f"{slower} of the {len(latencies)} requests ({slower / len(latencies):.0%}) took longer than the mean.")

# %% [markdown]
# Set the mean beside the percentiles: it mixes the few slow requests with the many fast ones into a number that
# describes neither. Percentiles keep the shape: the median says what a typical request sees, p99 what one request in a hundred sees,
# and a user who makes a hundred requests while using an application meets p99 about once. That is why every plot
# in this workbook shows latency by percentile, on a log scale.
#
# ## 3. The listen backlog and one-second stalls
#
# `listen(backlog)` tells the kernel how many connections it may complete and keep for a server that has not called
# `accept()` yet. The standard library asks for 5; sockserve asks for `socket.SOMAXCONN`:

# %%
print("socketserver.TCPServer.request_queue_size =", socketserver.TCPServer.request_queue_size)
print("sockserve.TCPServer.request_queue_size == socket.SOMAXCONN:",
      sockserve.TCPServer.request_queue_size == socket.SOMAXCONN)

# %% [markdown]
# A burst of 30 clients now connects at once to a plain server; each sends one request of 20 ms and waits for the
# reply. With every connection queued, the server has 30 × 20 ms = 0.6 s of work, so it can answer them all, one
# after another, within 0.9 s. Then the same burst against a backlog of 5:

# %% tags=["nbval-ignore-output"]
bursts = compare_backlogs((socket.SOMAXCONN, 5), clients=30, delay_ms=20, window=0.9)
show(plot_backlog(bursts), describe_backlog(bursts))
for burst in bursts:
    print(burst.summary())

# %% [markdown]
# **What to look for.** A line that climbs steadily is the server answering queued connections one after another.
# A **flat** stretch is time in which no reply came: when the queue is full, the kernel drops the packets of the
# connections it has no room for, and nothing happens until the clients' kernels retransmit, about one second after
# the burst (the initial TCP retransmission timeout; the next retries come after 3 s, then more). The sentence
# under the figure says where each of your lines was flat, and the lines under it how each burst ended.
#
# A connection can also be **reset** (the counts are printed above). A *reset* is a TCP segment with the RST flag: one
# side's kernel telling the other "I have no such connection: give it up". The other side's next `recv()` or
# `send()` fails with `ConnectionResetError` (`ECONNRESET`, "connection reset by peer"), and the request is lost,
# not retried. Why here? When its queue is full, Linux may complete a handshake without keeping any record of it
# (a *SYN cookie*); the client believes it is connected and sends its request, and if the queue is still full, the
# server's kernel has no connection to deliver it to, so it answers with a reset. The server's own statistics show
# nothing wrong: it never saw those clients. Only a measurement from the client side, with per-request times, shows the stall, and only if it opens
# new connections in bursts; a load test over a few persistent connections never notices.
#
# ## 4. What counting costs
#
# Every sockserve server counts its requests in `server.stats`: how many started, how each ended, how long its
# handler ran. The panels and plots in this workbook read those counters. Counting is not free: each request pays
# for a few additions, two clock readings and a record of its handler's time. How much? A time would not say:
# on a shared machine a difference of a few percent drowns in noise. `benchmarks/bench_callgrind.py` *counts*
# instead: it runs the same echo server under valgrind's callgrind, once with statistics and once without, and
# counts the instructions each request costs, a figure that comes out the same on a busy machine. Its latest run
# is stored next to this notebook, in `data/callgrind.json`; this cell reads it:

# %%
from sockserve.measure.statscost import counting_cost_sentences, counting_cost_table, load_counting_costs

costs = load_counting_costs("data/callgrind.json")
print(counting_cost_table(costs))
print()
print("\n".join(counting_cost_sentences(costs)))

# %% [markdown]
# **What to look for.** The "counting" column is what statistics add to one request, and "share" is that part of
# the request's whole cost. The "stdlib" column is the standard library's server, which counts nothing: the last
# line says whether sockserve's servers, counting included, cost more than that.
#
# A server can switch counting off with one class attribute, `collect_stats = False` (the benchmark's "stats off"
# runs do exactly that). Its `stats` then stay at zero and say so:

# %%
class Quiet(sockserve.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())


class Uncounted(sockserve.TCPServer):
    collect_stats = False


with background(Uncounted(("127.0.0.1", 0), Quiet)) as uncounted:
    print(ask(uncounted.server_address, b"hello\n"))
snapshot = uncounted.stats.snapshot()
print("enabled:", snapshot["enabled"], "| started:", snapshot["started"], "| completed:", snapshot["completed"])

# %% [markdown]
# ## Exercises
#
# Reference solutions: `solutions/05-measuring-honestly.py` (a teacher's copy: `sockserve lab --solutions`). A
# check first says what your code did and which idea it misses; if the same exercise fails again, it also says what
# to change.
#
# **Exercise 1.** Write `percentile(samples, q)`: the *nearest-rank* q-th percentile (0 < q ≤ 100) of a non-empty
# list of latencies, that is, the smallest sample such that at least q% of the samples are at or below it. Leave the
# caller's list unchanged.

# %%
from sockserve.exercises import check


def percentile(samples, q):
    pass  # your code here


verdict = check("measuring-percentile", percentile)
verdict

# %% tags=["nbval-ignore-output"]
if verdict:  # once your percentile is right: the closed loop's percentiles, computed by your function
    print({q: round(percentile(latencies, q), 2) for q in (50, 90, 99)}, "(from the closed loop above)")


# %% [markdown]
# **Exercise 2.** `BurstServer` derives from the standard library's `socketserver.TCPServer`. Make it serve a burst
# of 30 clients, each sending one 10 ms request at the same moment, within 0.9 s (it still handles one request at a
# time).

# %%
class BurstServer(socketserver.TCPServer):
    pass  # your code here


check("measuring-burst-backlog", BurstServer)


# %% [markdown]
# **Exercise 3.** A server can time its own requests, and many do. Write `TimingMixIn`, a server mixin that
# overrides the hook that runs a request's handler, measures how long the handler ran with `time.perf_counter()`,
# and appends the seconds to `self.durations` (a list the check gives each server), still running the handler.
# When it passes, the check also sends three requests at once to a plain server with your mixin and prints what
# the server measured beside what its clients waited: compare them with section 1.

# %%
import time


class TimingMixIn:
    pass  # your code here: the hook that runs the handler


check("measuring-timing-mixin", TimingMixIn)
