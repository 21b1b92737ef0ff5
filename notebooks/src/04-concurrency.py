# %% [markdown]
# # 04 · Concurrency: plain, threading, forking
#
# **The question.** Eight clients send requests at the same time. Does it help to handle each request in its own
# thread, or in its own child process, rather than one after another? We measure it on your machine, for two kinds
# of request: ones that mostly **wait** (`io`: the handler sleeps, like a call to a database) and ones that
# **compute** (`cpu`: pure-Python work). The answer is different for the two, and the reason is the GIL.
#
# Every measurement here runs each server in its own process and the load generator in another, so neither shares
# this notebook's interpreter. The comparisons run from the lab's panels: the cells press the panel's button for you
# (`panel.run()` is what *Run comparison* does), so *Run All* works; press the button yourself to measure again,
# with other settings. The sentences printed under each comparison are computed from its numbers, on your machine.

# %%
# %matplotlib inline
import os

import sockserve
from sockserve.measure.conclusions import report
from sockserve.measure.experiment import compare
from sockserve.measure.kinds import resolve_kind
from sockserve.lab import ComparePanel
from sockserve.plots import plot_throughput
from sockserve.workbook import fork_cost, show

# %% tags=["nbval-ignore-output"]
cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
print(f"this notebook may use {cores} CPU cores")

# %% [markdown]
# ## 1. Three servers, one hook apart
#
# The three kinds differ only in `process_request`, the hook that decides *where* a request is handled. Everything
# else (accepting, `verify_request`, the handler's `setup`/`handle`/`finish`) is the same code:

# %%
for kind in ("plain", "threading", "forking"):
    info = resolve_kind(kind)
    owner = next(k for k in info.server_class.__mro__ if "process_request" in vars(k))
    print(f"{kind:10} {info.server_class.__name__:18} process_request from {owner.__name__:14} {info.description}")

# %% [markdown]
# ## 2. Requests that wait: the `io` workload
#
# Each request sleeps 10 ms in the handler. Eight clients in a *closed loop* (each sends its next request as soon
# as the previous reply arrives) keep the server busy for 0.8 s per kind:

# %% tags=["nbval-ignore-output"]
io_panel = ComparePanel(workload="io", servers=("plain", "threading", "forking"), clients=8, duration=0.8)
io_panel.run()  # what pressing "Run comparison" does
io_panel

# %% tags=["nbval-ignore-output"]
io_results = io_panel.model.wait()  # until the comparison has finished (each run is bounded by its duration)
print(report(io_results))
plain = io_results.run("plain").latency_ms["p50"]
print(f"plain's median latency was {plain:.0f} ms, {plain / 10:.1f} times the 10 ms of work: each request waited "
      "in the queue behind the others.")

# %% [markdown]
# **What to look for** in the panel's figure.
#
# * *Throughput* (middle). The plain server handles one request at a time, so it cannot do better than one request
#   per 10 ms (100 per second). The threading and forking servers let the eight sleeps overlap, so eight clients
#   allow at most eight times as much; the sentences above say how close your machine came, and the overheads
#   (the load generator, starting a thread or a process per request) decide the rest.
# * *Latency* (left). With the plain server a request waits in the queue behind the others. With threads or
#   processes each request takes about its own 10 ms plus those overheads.
# * *Threads and children* (right). The threading server runs one thread per request in flight: its line sits near
#   the number of clients, plus the two threads every server process here has (the serving loop and a helper of the
#   command that runs it). The forking server forks one child per request, and the sampled number of children moves
#   around as they come and go. The plain server stays at its two threads.
#
# Sleeping releases the GIL, and a sleeping thread costs no CPU: for waiting, threads are as good as processes and
# much cheaper to start.
#
# ## 3. Requests that compute: the `cpu` workload
#
# Now each request does about 10 ms of pure-Python work. Pure Python holds the GIL (the *global interpreter lock*):
# in one process, only one thread at a time runs Python code. Four clients this time:

# %% tags=["nbval-ignore-output"]
cpu_panel = ComparePanel(workload="cpu", servers=("plain", "threading", "forking"), clients=4, duration=0.8)
cpu_panel.run()
cpu_panel

# %% tags=["nbval-ignore-output"]
cpu_results = cpu_panel.model.wait()
print(report(cpu_results))

# %% [markdown]
# **What to look for.**
#
# * The threading server **cannot be faster than the plain one**. Its four threads take turns holding the GIL, so the
#   work is still done one piece at a time, only interleaved: the throughput stays where the plain server's is, and
#   the latencies spread out (the threads' turns are handed out unevenly, so some requests wait longer).
# * The forking server can be faster **if your machine has more than one core** to give it: each child is a
#   separate process with its own interpreter and its own GIL, so children compute in parallel, up to the number of
#   cores (the first cell printed how many this notebook may use). On one core, it cannot win.
# * The load generator and the other programs on your machine use the same cores, so the gain is less than the
#   number of cores. The sentences above compare what you measured with what your cores allow.
#
# ## 4. What forking costs
#
# A fork per request is not free: the child is a new process. When the work per request is tiny (the `echo`
# workload replies at once), that cost dominates. Here the engine behind the panels, `compare`, runs directly:

# %% tags=["nbval-ignore-output"]
echo_results = compare("echo", servers=("plain", "threading", "forking"), clients=4, duration=0.5)
show(plot_throughput(echo_results))
print(report(echo_results))

# %% [markdown]
# **Where the fork goes.** A fork copies the process's page tables (the memory itself is shared until either side
# writes to it), so the bigger the process, the dearer the fork. The servers above run in small processes of their
# own. A forking server started *in this notebook* (a `ServerPanel` with the forking kind, say) forks the
# notebook's kernel, which has matplotlib, widgets and everything you ran loaded. Here is one fork, plus the
# child's exit and its reaping, in this kernel and in a fresh Python:

# %% tags=["nbval-ignore-output"]
cost = fork_cost(count=10)
print(f"this kernel ({cost.here_mib:.0f} MiB resident): {cost.here_s * 1000:.2f} ms per fork")
print(f"a fresh Python ({cost.fresh_mib:.0f} MiB resident): {cost.fresh_s * 1000:.2f} ms per fork")
print(f"forking this kernel costs {cost.ratio:.1f} times as much: a forking server started in the kernel "
      "pays that on every request, so it serves fewer requests per second than the same server in a small process.")

# %% [markdown]
# So:
#
# | the handler mostly... | plain | threading | forking |
# |---|---|---|---|
# | waits (I/O, sleeps) | one at a time | overlaps the waits, cheaply | overlaps the waits, at a fork each |
# | computes (pure Python) | one at a time | no faster: the GIL | parallel, up to the cores |
# | does almost nothing | fine | a thread each | a process each: the slowest |
#
# Forking wins when requests compute in Python and there are cores to spare. Threads win when requests wait. And
# neither bounds how many threads or children a burst of clients makes: lesson 07 looks at bounded pools.
#
# ## Exercises
#
# Reference solutions: `solutions/04-concurrency.py` (a teacher's copy: `sockserve lab --solutions`). A check
# first says what your code did and which idea it misses; if the same exercise fails again, it also says what to
# change.
#
# **Exercise 1.** This server was meant to handle each request in its own thread, but it handles them one at a time.
# Fix it (one line), then check it.

# %%
from sockserve.exercises import check


class MyThreadingServer(sockserve.TCPServer, sockserve.ThreadingMixIn):
    pass


check("concurrency-mixin-order", MyThreadingServer)


# %% [markdown]
# **Exercise 2.** Now write the mixin yourself, without `ThreadingMixIn`. `OwnThreadingMixIn.process_request` must
# return at once and leave the request to a new thread, which does what `BaseServer.process_request` does in the
# serving thread: run the handler with `finish_request`, report an exception from it with `handle_error` (a
# handler's crash must not go unnoticed), and in every case end the request with `shutdown_request`. The check
# combines your mixin with `TCPServer`, sends four 0.2 s requests at once and one request whose handler raises.

# %%
import threading


class OwnThreadingMixIn:
    def process_request(self, request, client_address):
        pass  # your code here: start a thread that handles the request


check("concurrency-own-threads", OwnThreadingMixIn)


# %% [markdown]
# **Exercise 3.** Put the measurements into a model. Write `ideal_rps(kind, workload, clients, ms, cores)`: the
# most requests per second a `"plain"`, `"threading"` or `"forking"` server can serve when `clients` closed-loop
# clients send `"io"` or `"cpu"` requests of `ms` milliseconds each, on a machine with `cores` cores, ignoring
# every overhead. Then compare your model with what you measured above: where is the measurement furthest from
# the model, and why?

# %%
def ideal_rps(kind, workload, clients, ms, cores):
    pass  # your code here


check("concurrency-ideal-throughput", ideal_rps)

# %% tags=["nbval-ignore-output"]
for results, clients in ((io_results, 8), (cpu_results, 4)):
    for run in results.runs:
        model = ideal_rps(run.server, run.workload, clients, 10, cores)
        shown = f"{model:7.0f}" if isinstance(model, (int, float)) else "      ?"
        print(f"{run.workload:4} {run.server:10} measured {run.throughput_rps:7.0f} req/s   your model {shown}")
