# %% [markdown]
# # 06 · Shutting down
#
# **The question.** How long does `shutdown()` take, and what happens to the requests that are still running when a
# server stops? We measure the standard library's `socketserver` and sockserve side by side on your machine, then
# look at the knobs that decide what "stopped" means: `block_on_close`, `daemon_threads`, and draining.

# %%
import socketserver
import statistics
import threading

import sockserve
from sockserve.workbook import (
    close_timing,
    describe_shutdown_latencies,
    drain_demo,
    exit_with_handler_running,
    plot_shutdown_latencies,
    show,
    shutdown_latencies,
    shutdown_sentences,
)

# %% [markdown]
# ## 1. `serve_forever()` and `shutdown()`
#
# `serve_forever()` runs the loop in the thread that calls it, so a program (or a notebook) usually starts it in a
# separate thread. `shutdown()`, called from another thread, asks the loop to stop and **waits until it has**.
# `server_close()` then closes the listening socket. Every sockserve server records where it is in `server.state`:

# %%
server = sockserve.ThreadingTCPServer(("127.0.0.1", 0), sockserve.StreamRequestHandler)
print("after construction:", server.state.name)
thread = threading.Thread(target=server.serve_forever)
thread.start()
while server.state is not sockserve.ServerState.SERVING:
    threading.Event().wait(0.01)
print("while serving:     ", server.state.name)
server.shutdown()
thread.join()
print("after shutdown():  ", server.state.name, "(the socket still listens; serve_forever could run again)")
server.server_close()
print("after server_close():", server.state.name)

# %% [markdown]
# ## 2. How long does `shutdown()` take?
#
# Each round below starts a server, lets it serve for a random moment, and times `shutdown()`. The standard
# library's `socketserver.TCPServer` and sockserve's are called with the same `poll_interval`, the argument of
# `serve_forever()` (0.5 s by default), for four values of it, five rounds each (the cell takes several seconds,
# most of them spent waiting for the standard library's loop). The moments are new each time you run the cell:

# %% tags=["nbval-ignore-output"]
polls = (0.05, 0.1, 0.25, 0.5)
results = shutdown_latencies({"socketserver": socketserver.TCPServer, "sockserve": sockserve.TCPServer},
                             polls, rounds=5)
show(plot_shutdown_latencies(results), describe_shutdown_latencies(results))
for poll in polls:
    slow, quick = (statistics.median(results[name][poll]) for name in ("socketserver", "sockserve"))
    print(f"poll_interval {poll:4g} s: median shutdown() socketserver {slow * 1000:6.1f} ms, "
          f"sockserve {quick * 1000:5.2f} ms ({slow / quick:,.0f} times as fast)")
print("\n".join(shutdown_sentences(results)))

# %% [markdown]
# **Why.** The standard library's loop is, in essence:
#
# ```python
# while not self.__shutdown_request:
#     ready = selector.select(poll_interval)    # sleeps up to poll_interval
#     if ready: self._handle_request_noblock()
# ```
#
# `shutdown()` sets the flag and waits for the loop to notice it, which it can only do when `select()` returns:
# when a request arrives, or when `poll_interval` runs out. On an idle server that is anywhere between 0 and
# `poll_interval` seconds, half of it on average. sockserve's loop also watches one end of a socket pair, and
# `shutdown()` writes a byte to the other end: `select()` wakes at once. So in the chart each of the standard
# library's rounds can land anywhere between zero and the dashed line (its `poll_interval`), and a smaller interval
# lowers that ceiling; sockserve's rounds do not depend on the interval. With a few random moments per interval,
# the medians are themselves random: the last lines under the chart say what your rounds showed. A shorter
# `poll_interval` helps the standard library only at the price of waking up more often for nothing.


# %% [markdown]
# ## 3. Requests still running: `block_on_close`
#
# `shutdown()` stops *accepting*; a threading server's handlers may still be running in their threads. What
# `server_close()` does about them is set by `block_on_close` (default `True`: wait for every handler thread).
# Below, a handler that takes 1 s is running when we close the server:

# %% tags=["nbval-ignore-output"]
class NoWaitServer(sockserve.ThreadingTCPServer):
    block_on_close = False


waiting = close_timing(sockserve.ThreadingTCPServer, handler_seconds=1.0)
not_waiting = close_timing(NoWaitServer, handler_seconds=1.0)
for name, timing in (("block_on_close=True ", waiting), ("block_on_close=False", not_waiting)):
    print(f"{name}: server_close() took {timing.close_seconds * 1000:6.1f} ms")

# %%
for name, timing in (("block_on_close=True ", waiting), ("block_on_close=False", not_waiting)):
    print(f"{name}: handler had finished when server_close() returned: {timing.handler_done_at_close}")

# %% [markdown]
# ## 4. When the program ends: `daemon_threads`
#
# At exit, Python waits for every thread that is not a *daemon* thread. Handler threads are not daemons unless
# the server class says `daemon_threads = True`. Here are two Python processes whose main thread simply ends while a
# handler is busy for 0.5 s:

# %%
print("daemon_threads = False:", exit_with_handler_running(daemon_threads=False))
print("daemon_threads = True: ", exit_with_handler_running(daemon_threads=True))

# %% [markdown]
# So `daemon_threads = True` makes exiting quick and cuts requests off mid-way; `False` (the default) finishes them
# but lets one slow or stuck client hold the whole process open.
#
# ## 5. Draining: finish what you can, cut off the rest, and say so
#
# A careful server stops in three steps: stop accepting, give requests in flight a bounded time to finish, then cut
# off whatever is left. sockserve servers have this as `server.drain(timeout)`, which returns a `DrainReport`. Below,
# three requests need 0.1 s and one waits forever for a line its client never sends; we drain with a budget of 1 s:

# %%
report, received = drain_demo(sockserve.ThreadingTCPServer, quick=3, stuck=1, timeout=1.0, work=0.1)
print(f"completed: {report.completed}, aborted: {report.aborted}, clean: {report.clean}")
for i, data in enumerate(received):
    print(f"client {i} received {data!r}")

# %% tags=["nbval-ignore-output"]
print(f"the drain took {report.waited:.3f} s (the budget was 1 s: the stuck request used all of it)")

# %% [markdown]
# The stuck request's socket was shut down, so its handler woke from its read with end-of-file, and its client saw
# the connection close (`b''`); it is counted in `report.aborted` and in `server.stats` as aborted, never dropped
# silently. The same call works for thread pools, forking and pre-forking servers (children get `SIGTERM`, then
# `SIGKILL`). With the standard library, the nearest you can do is `shutdown()` then `server_close()`, which with
# `block_on_close` waits for the stuck handler **forever**.
#
# ## Exercises
#
# Reference solutions: `solutions/06-shutting-down.py` (a teacher's copy: `sockserve lab --solutions`). A check
# first says what your code did and which idea it misses; if the same exercise fails again, it also says what to
# change.
#
# **Exercise 1.** Write `stop(server, thread)`: `serve_forever` runs in `thread`; stop the loop, wait for the
# thread, and release the port, letting the request in flight get its reply.

# %%
from sockserve.exercises import check


def stop(server, thread):
    pass  # your code here


check("shutdown-stop", stop)


# %% [markdown]
# **Exercise 2.** Write `QuickCloseServer`, a `ThreadingTCPServer` whose `server_close()` returns at once even while
# a handler runs, and whose handler threads cannot keep the interpreter alive at exit.

# %%
class QuickCloseServer(sockserve.ThreadingTCPServer):
    pass  # your code here: one class attribute


check("shutdown-quick-close", QuickCloseServer)


# %% [markdown]
# **Exercise 3.** Write `stop_within(server, seconds)`: stop accepting, give requests in flight up to `seconds` to
# finish, cut off the rest, close the server, and return the `DrainReport`.

# %%
def stop_within(server, seconds):
    pass  # your code here


check("shutdown-drain", stop_within)


# %% [markdown]
# **Exercise 4.** A server can be stopped from inside: a handler reaches its server as `self.server`. Write
# `StopHandler`: it answers every line with the same line, and on the line `STOP` it answers `bye`, stops its own
# server, and returns. The check runs it on a `TCPServer`, where the handler runs in the serving thread itself
# (with the standard library, `shutdown()` called there would wait forever for the loop it is running in), and on a
# `ThreadingTCPServer`.

# %%
class StopHandler(sockserve.StreamRequestHandler):
    def handle(self):
        pass  # your code here


check("shutdown-stop-handler", StopHandler)
