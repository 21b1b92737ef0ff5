# %% [markdown]
# # The sockserve workbook
#
# This workbook teaches how socket servers work in Python by **running them**: each lesson starts real servers on
# your machine (bound to `127.0.0.1`, never to the outside world), sends traffic at them, and measures what happens.
#
# The servers come from `sockserve`, a reimplementation of the standard library's `socketserver` with the same
# classes, attributes and hook order, plus live statistics, instant shutdown and clear errors. Everything you learn
# here applies to `socketserver` unchanged; where sockserve behaves better on purpose, the lesson says so.
#
# ## How to run it
#
# * **Locally**: from a clone of the repository,
#   `python3 -m venv .venv && .venv/bin/pip install -e ".[lab]" && .venv/bin/sockserve lab`;
#   or, with sockserve installed from a wheel (`pip install "sockserve[lab]"`), `sockserve lab`, which copies these
#   lessons into `./sockserve-workbook` first.
# * **On Binder**: follow the *launch binder* badge in the README.
# * **In a class**: the [teacher's guide](TEACHING.md) has each lesson's objectives, timings and exercises, a plan
#   for two 90-minute sessions, and how to run the workbook on a JupyterHub.
#
# ## What it needs
#
# **Linux** (any distribution, or WSL 2 on Windows), Python 3.10 or newer. The lessons use three things that only
# Linux has together: `fork()` (the forking servers of lessons 01, 04, 07 and 09), Unix sockets (lesson 03) and the
# `/proc` file system, from which they read what the kernel knows: a server's threads, children and CPU time (the
# comparisons of lessons 04, 07 and 08), TIME-WAIT sockets (lesson 02), zombie processes (lesson 09) and the
# kernel's socket tables (all of lesson 10).
#
# **macOS** has `fork()` and Unix sockets but no `/proc`: there the servers, clients and checks of lessons 01-03 and
# 05-08 run, but the comparisons show no thread, child or CPU figures, and lesson 02's TIME-WAIT count, lesson 09's
# zombie exercise and lesson 10 do not work. (This is what the code reads; the workbook is tested on Linux only.)
# **Windows** without WSL has none of the three.
#
# Run each lesson top to bottom (*Run → Run All Cells*). Every cell finishes in a few seconds; the measurements are
# taken on your machine, so your numbers will differ from your neighbour's, and that is part of the lesson.
#
# ## Lessons
#
# Each lesson asks one question, answers it with measurements taken live on your machine, and ends with exercises
# that you check with `check(...)`. Running an exercise cell before you have changed it does not count as an
# attempt; a first wrong answer gets a hint, a second one the hint and what to change. The reference solutions are
# for teachers (`sockserve lab --solutions` copies them into `solutions/`).
#
# | | Lesson | The question it answers |
# |---|---|---|
# | 01 | [Architecture: servers, handlers, one-hook mixins](01-architecture.ipynb) | Which methods run for one request, in which class, thread or process? The class tree drawn from the package, the request lifecycle, live call-flow traces of `TCPServer`, `UDPServer`, `ThreadingMixIn` and `ForkingMixIn`. |
# | 02 | [TCP: a line protocol, `rfile`/`wfile`, "address already in use"](02-tcp.ipynb) | What does a `StreamRequestHandler` receive, and why does a stopped server sometimes refuse to restart? |
# | 03 | [UDP and Unix sockets](03-udp-and-unix.ipynb) | What changes with datagrams (`max_packet_size`, truncation) and with a file path instead of a port? |
# | 04 | [Concurrency](04-concurrency.ipynb) | One at a time, a thread per request, a process per request, or a pool: what does each cost under load? |
# | 05 | [Measuring honestly](05-measuring-honestly.ipynb) | How do you measure a server without fooling yourself? |
# | 06 | [Shutting down](06-shutting-down.ipynb) | How long does `shutdown()` take, and what happens to requests still running? `block_on_close`, `daemon_threads`, draining. |
# | 07 | [Building on sockserve](07-building-on-sockserve.ipynb) | How do you build your own server on these classes? |
# | 08 | [A server from scratch](08-a-server-from-scratch.ipynb) | What does `socketserver` do for you? You write a blocking accept loop and a `selectors` event loop, measure them beside the hierarchy's servers on one timeline, map each piece onto a `BaseServer` hook, and meet asyncio. |
# | 09 | [When things go wrong](09-when-things-go-wrong.ipynb) | What does a server see when clients reset, vanish, go silent or drip, and what does TCP itself add? Resets and broken pipes in `handle_error`, `timeout` vs `request_timeout`, threads vs a pool under slow clients, zombies and `collect_children`, Nagle and delayed ACKs, half-closing. |
# | 10 | [The kernel's view](10-the-kernels-view.ipynb) | What does the kernel hold for a server that its code never sees? `server_bind`/`server_activate`/`fileno` live, the listen queue under a burst, the handshake, TIME-WAIT on the side that closes first, CLOSE-WAIT when nobody closes. |
#
# Lessons 01 to 03 are the foundation; after them, the others can be read in any order.
#

# %% [markdown]
# ## Check your setup
#
# The cell below imports sockserve and prints the classes it offers, grouped the way the lessons use them. If it
# runs without an error, you are ready.

# %%
import sockserve

public = [getattr(sockserve, name) for name in sockserve.__all__]
classes = [c for c in public if isinstance(c, type)]
mixins = [c for c in classes if c.__name__.endswith("MixIn")]
servers = [c for c in classes if issubclass(c, sockserve.BaseServer)]
groups = {
    "servers": [c for c in servers if not issubclass(c, tuple(mixins))],
    "mixins": mixins,
    "combined": [c for c in servers if issubclass(c, tuple(mixins))],
    "handlers": [c for c in classes if issubclass(c, sockserve.BaseRequestHandler)],
}
for group, members in groups.items():
    print(f"{group:9} {len(members):2}  {', '.join(c.__name__ for c in members)}")
