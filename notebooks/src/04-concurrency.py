# %% [markdown]
# # 04 · Concurrency: plain, threading, forking
#
# **The question.** Eight clients send requests at the same time. Does it help to handle each request in its own
# thread, or in its own child process, rather than one after another? We measure it on your machine, for two kinds
# of request: ones that mostly **wait** (`io`: the handler sleeps, like a call to a database) and ones that
# **compute** (`cpu`: pure-Python work). The answer is different for the two, and the reason is the GIL.
#
# Every measurement here runs each server in its own process and the load generator in another, so neither shares
# this notebook's interpreter. A comparison starts every server, then loads them in short **rounds**, one server
# after the other (plain, threading, forking, plain, threading, forking, ...), so that whatever else your machine
# does at the time falls on every server alike, and the spread of the rounds shows how far a difference can be
# trusted. It also measures who used the CPU meanwhile: each server (its children included), the load generator,
# and the other programs on your machine.
#
# The comparisons run from the lab's panels: the cells press the panel's button for you (`panel.run()` is what
# *Run comparison* does), so *Run All* works; press the button yourself to measure again, with other settings.
# Every sentence printed under a comparison is computed from its figures, on your machine; the text between the
# cells explains the mechanisms, never the outcome.

# %%
# %matplotlib inline
import os

import sockserve
from sockserve.measure.conclusions import concurrency_sentences, report
from sockserve.measure.convoy import convoy, convoy_report
from sockserve.measure.experiment import compare
from sockserve.measure.kinds import resolve_kind
from sockserve.measure.limits import usable_cores
from sockserve.measure.reference import REFERENCE_FILE, load_reference
from sockserve.lab import ComparePanel
from sockserve.plots import describe_comparison, describe_throughput, plot_comparison, plot_throughput
from sockserve.plots.cpuuse import describe_convoy, describe_cpu_use, plot_convoy, plot_cpu_use
from sockserve.workbook import fork_cost, show

# %% tags=["nbval-ignore-output"]
cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
print(f"this notebook may use {usable_cores().describe()} ({cores} CPUs by affinity)"
      + (f"; the load average of the last minute is {load:.2f}" if load is not None else ""))

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
# as the previous reply arrives) keep the server busy for one second per kind, in rounds:

# %% tags=["nbval-ignore-output"]
io_panel = ComparePanel(workload="io", servers=("plain", "threading", "forking"), clients=8, duration=1.0)
io_panel.run()  # what pressing "Run comparison" does
io_panel

# %% [markdown]
# The next cell waits for the comparison to finish, draws what it measured (the panel draws the same figure while
# it runs), and prints the sentences computed from it.

# %% tags=["nbval-ignore-output"]
io_results = io_panel.model.wait()  # until the comparison has finished (each run is bounded by its duration)
show(plot_comparison(io_results))
print(describe_comparison(io_results))
print()
print(report(io_results))
plain = io_results.run("plain").latency_ms["p50"]
print(f"plain's median latency was {plain:.0f} ms, {plain / 10:.1f} times the 10 ms of work"
      + (": each request waited in the queue behind the others." if plain > 15 else "."))
for sentence in concurrency_sentences(io_results):
    print(sentence)

# %% [markdown]
# **What to look for** in the figure above.
#
# * *Throughput* (middle). The plain server handles one request at a time, so it cannot do better than one request
#   per 10 ms (100 per second). The threading and forking servers let the sleeps overlap, so eight clients allow at
#   most eight times as much. Each dashed line is that limit for its bar; the sentences say how close your machine
#   came, and the overheads (the load generator, starting a thread or a process per request) decide the rest.
# * *Latency* (left). A request to the plain server waits in the queue behind the others' requests. With threads or
#   processes each request takes its own 10 ms plus those overheads.
# * *Threads and children* (right). The figure counts **handler threads**: the threads a server starts for requests,
#   not the thread that runs its serving loop. A plain server starts none, it handles each request in its serving
#   thread, so its line stays at 0. A threading server starts one per request and a forking server one child per
#   request; each counts the most alive at once in every tenth of a second, and a thread or child that has just sent
#   its reply still counts while the next request's starts. The sentences under the figure give your counts.
#
# Sleeping releases the GIL, and a sleeping thread costs no CPU: for waiting, threads are as good as processes and
# much cheaper to start.
#
# ## 3. Requests that compute: the `cpu` workload
#
# Now each request does about 10 ms of pure-Python work, the same number of loop iterations in every server.
# Pure Python holds the GIL (the *global interpreter lock*): in one process, only one thread at a time runs Python
# code. Four clients this time:

# %% tags=["nbval-ignore-output"]
cpu_panel = ComparePanel(workload="cpu", servers=("plain", "threading", "forking"), clients=4, duration=1.5)
cpu_panel.run()
cpu_panel

# %% [markdown]
# Requests per second measured on a shared CPU are the share of the CPU a server won as much as how well it serves:
# the scheduler gives every runnable thread and process its turn, so a server with several of them can win more of
# a busy core than a server with one. Two figures do not move with that, and the argument rests on them:
#
# * **work per CPU second**: requests served for each second of CPU the server (children included) used. In one
#   process the GIL lets one thread run Python at a time, so a threading server's threads bring no more CPU to the
#   work, only the switching between them: it can do no more work per CPU second than the plain server;
# * **cores kept busy**: the server's CPU seconds per second. A single process (plain, threading) runs Python on one
#   core at most. A forking server's children each have their own interpreter and their own GIL, so they can run on
#   as many cores as are free, that is, as your machine has, less what the load generator and other programs take.
#
# Requests per second are the product of the two. The figure shows both, and the sentences under it compare them.

# %% tags=["nbval-ignore-output"]
cpu_results = cpu_panel.model.wait()
show(plot_cpu_use(cpu_results))
print(describe_cpu_use(cpu_results))
print()
print(report(cpu_results))

# %% [markdown]
# ### What a quiet machine with more cores measured
#
# Your machine may have a single core, or other programs may take most of its cores. To see what forking does when
# cores are free, here is the same comparison recorded once on another machine, stored next to this notebook in
# `data/concurrency-reference.json`. It is **not your machine**: the first line says where and when it was recorded,
# how many cores it had and how busy it was, and the sentences are computed from its figures.

# %% tags=["nbval-ignore-output"]
reference = load_reference(REFERENCE_FILE)
print(reference.label())
show(plot_cpu_use(reference.cpu))
print(describe_cpu_use(reference.cpu))
print()
print(report(reference.cpu, owner="its"))

# %% [markdown]
# ## 4. Short requests behind long ones: the convoy
#
# So far every request asked for the same work. Real servers mix them: a few requests compute for a long time while
# many short ones should get through quickly. Here two clients send 50 ms requests back to back while short requests
# (1 ms of work) arrive twenty times a second, and we measure how long the short ones take. What each server does
# with them:
#
# * **plain** serves one request at a time, so a short request waits for the long ones accepted before it;
# * **threading**: a thread that waits for its socket gives the GIL up. To run again it must get it back, and a
#   thread that is computing hands it over only when asked, once every *switch interval*
#   (`sys.getswitchinterval()`, 5 ms). A short request needs the GIL at every step (the accept, the read, its work,
#   the reply), so it waits behind the long ones at each step: David Beazley called this the **convoy effect**. It
#   does not need a second core to show: it is about who may run Python, not about how many cores there are;
# * **forking**: each child has its own GIL, and the operating system's scheduler shares the cores among the
#   children, favouring one that has just woken up over one that has been computing for a while.

# %% tags=["nbval-ignore-output"]
convoy_results = convoy(servers=("plain", "threading", "forking"), duration=3.0, rounds=3)
show(plot_convoy(convoy_results))
print(describe_convoy(convoy_results))
print()
print(convoy_report(convoy_results))

# %% [markdown]
# The stored reference run measured the convoy too, on its machine:

# %% tags=["nbval-ignore-output"]
if reference.convoy is not None:
    print(convoy_report(reference.convoy, owner="its"))

# %% [markdown]
# ## 5. What forking costs
#
# A fork per request is not free: the child is a new process. When the work per request is tiny (the `echo`
# workload replies at once), that cost dominates. Here the engine behind the panels, `compare`, runs directly:

# %% tags=["nbval-ignore-output"]
echo_results = compare("echo", servers=("plain", "threading", "forking"), clients=4, duration=0.5)
show(plot_throughput(echo_results))
print(describe_throughput(echo_results))
print()
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
if cost.ratio > 1.15:
    print(f"forking this kernel costs {cost.ratio:.1f} times as much: a forking server started in the kernel pays "
          "that on every request.")
else:
    print(f"forking this kernel costs about as much ({cost.ratio:.2f} times): measure again if that surprises you.")

# %% [markdown]
# So, what each model allows (which of them wins on a machine is what its figures say, as above):
#
# | the handler mostly... | plain | threading | forking |
# |---|---|---|---|
# | waits (I/O, sleeps) | one at a time | overlaps the waits, a thread each | overlaps the waits, a fork each |
# | computes (pure Python) | one core | one core at most (the GIL), no more work per CPU second | up to the free cores, a fork each |
# | does almost nothing | no cost per request | a thread per request | a process per request |
# | mixes short and long | short ones queue behind long ones | short ones wait for the GIL at every step | short ones get their own interpreter |
#
# Processes can compute in parallel where there are free cores; threads overlap waits cheaply. And neither bounds
# how many threads or children a burst of clients makes: lesson 07 looks at bounded pools.
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
