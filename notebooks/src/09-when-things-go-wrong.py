# %% [markdown]
# # 09 · When things go wrong
#
# **The question.** Clients are not polite. They vanish mid-request, go silent, send one byte a second, leave
# before the reply; and some delays come from TCP itself. What exactly does a server see in each case, what does it
# cost, and which hook or attribute is there to deal with it?
#
# Every situation below is made to happen on `127.0.0.1` and measured on your machine, and each ends with an
# exercise where you build the piece that handles it. The helpers live in `sockserve.workbook.mishaps`; each call starts its
# own server, takes at most a few seconds, and cleans up.

# %%
import os
import socket      # for your exercises: socket, sys, threading and time
import statistics
import sys
import threading
import time

import sockserve
from sockserve.workbook import mishaps
from sockserve.exercises import check

# %% [markdown]
# ## 1. "Connection reset by peer" and "Broken pipe"
#
# A TCP connection normally ends with a **FIN**: "I have nothing more to send", after which the other side reads
# end of file (`b""`). It can also end with a **RST** (reset): "this connection no longer exists", after which the
# other side's next read or write fails. A client sends a reset when it closes with `SO_LINGER` set to zero (some
# load balancers and crashed programs do), and, less obviously, when it closes while data it was sent is still
# unread. Writing to a connection whose client has already gone fails too. Three clients misbehave below; the
# handler greets each, reads a line, then replies five times, and records the first call that fails:
#
# ```python
# client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # linger on, 0 seconds
# client.close()                                                                     # -> RST, not FIN
# ```

# %%
for seen in mishaps.client_mishaps():
    print(f"client {seen.client}:")
    print(f"    the handler's {seen.call} raised {seen.exception} ({seen.errno_name}: {seen.message})")

# %% [markdown]
# Note where each error appears: a reset is reported by the *next* call on the socket, a read or a write; a client
# that left normally is noticed only when the server writes, and even then the first write "succeeds" (the bytes
# go into the kernel's buffer, and the client's kernel answers them with a reset), so it is a later write that
# raises `BrokenPipeError` (EPIPE). None of this is a bug in the server, and it happens all day on any public
# server. The exception propagates out of `handle()` to the server, which calls its hook
# `handle_error(request, client_address)` from inside its `except` clause. The standard library's prints a traceback
# for each; sockserve's counts a vanished client in `server.stats` (`disconnects`) and logs one debug line, and
# prints the traceback only for other exceptions (bugs in the handler).
#
# **Exercise 1.** Write `RecordingServer`, a `ThreadingTCPServer` whose `handle_error` appends
# `(client_address, exception)` to `self.failures` for every request that failed, instead of printing. The check
# makes a client reset, one leave before its reply, and a handler raise `ValueError`.

# %%
class RecordingServer(sockserve.ThreadingTCPServer):
    pass  # your code here: __init__ and handle_error


check("wrong-handle-error", RecordingServer)

# %% [markdown]
# ## 2. A slow client holds a thread: `timeout` and `request_timeout`
#
# A handler that reads waits for as long as its client says nothing. On a plain `TCPServer` (one request at a time),
# one silent client stops everyone else. Below, a client connects and stays silent for 1 s, and a second client asks
# for one line meanwhile:

# %%
silent = mishaps.slow_client("silent", hold=1.0)
print("the quick client waited until the silent one let go:", silent.quick_waited >= 0.8 * silent.held)

# %% [markdown]
# `StreamRequestHandler.timeout` (None by default) is an **idle** timeout: it is set on the connection with
# `settimeout()`, so every read (and write) raises `TimeoutError` after that many seconds without progress. With
# `timeout = 0.2` the silent client is cut off after 0.2 s, so the quick one need not wait for it. But a client that
# *drips*, one byte every 50 ms and never a full line, makes progress on every read, so no read ever times out:

# %%
idle_cut = mishaps.slow_client("silent", hold=1.0, timeout=0.2)
drip = mishaps.slow_client("dripping", hold=1.0, timeout=0.2)
print("timeout = 0.2, silent client:   cut off early:", idle_cut.slow_cut_after is not None,
      "| the quick client waited less than the silent one held on:", idle_cut.quick_waited < 0.5 * idle_cut.held)
print("timeout = 0.2, dripping client: cut off early:", drip.slow_cut_after is not None,
      "| the quick client waited until it let go:", drip.quick_waited >= 0.8 * drip.held)

# %% tags=["nbval-ignore-output"]
for run in (silent, idle_cut, drip):
    cut = f"cut off after {run.slow_cut_after:.2f} s" if run.slow_cut_after else "never cut off"
    print(f"{run.how:8} client, {cut:22}; the quick client waited {run.quick_waited:.2f} s")

# %% [markdown]
# Bounding the **whole** request needs a deadline, not a per-read timeout. The standard library has none; sockserve
# servers have `request_timeout` (a class attribute, None by default): that many seconds after a request was
# accepted, the server shuts its socket down, so a handler blocked in a read sees end of file, whatever the client
# does.

# %%
if hasattr(sockserve.TCPServer, "request_timeout"):
    total = mishaps.slow_client("dripping", hold=1.0, timeout=0.2, request_timeout=0.3)
    print("request_timeout = 0.3, dripping client: cut off early:", total.slow_cut_after is not None,
          "| the quick client waited less than the dripping one held on:", total.quick_waited < 0.8 * total.held)
else:
    print("this version of sockserve has no request_timeout")

# %% [markdown]
# **Exercise 2.** Write `Patient`, a `StreamRequestHandler` that answers each line in upper case and, when its client
# has been silent for more than 0.3 s, writes `b"idle timeout\n"` and ends the connection (a client that is told
# why can tell a timeout from a crash). A client that sends a line every 0.1 s must never be cut off.

# %%
class Patient(sockserve.StreamRequestHandler):
    pass  # your code here


check("wrong-idle-timeout", Patient)

# %% [markdown]
# ## 3. Many slow clients: a thread per request, or a pool?
#
# A thread per request (`ThreadingTCPServer`) gives a slow client its own thread, so it slows no one else, but
# nothing bounds the threads: a thousand slow clients make a thousand threads. A thread pool (`ThreadPoolTCPServer`,
# `pool_size` workers) bounds them, and that bound is exactly what slow clients exhaust. Eight clients connect and
# stay silent for 0.5 s, then a quick client asks for one line:

# %%
crowd = {
    "threading": mishaps.slow_crowd(sockserve.ThreadingTCPServer, slow_clients=8, hold=0.5),
    "pool of 4": mishaps.slow_crowd(sockserve.ThreadPoolTCPServer, slow_clients=8, hold=0.5, pool_size=4),
}
for name, run in crowd.items():
    print(f"{name:9}: at most {run.peak_active} requests in handlers at once; the quick client was answered "
          f"{'before' if run.quick_waited < 0.8 * run.hold else 'only after'} the slow ones let go")

# %% tags=["nbval-ignore-output"]
for name, run in crowd.items():
    print(f"{name:9}: the quick client waited {run.quick_waited * 1000:.1f} ms")

# %% [markdown]
# Neither is right on its own: unbounded threads let a crowd of slow clients eat memory, a bounded pool lets them
# starve everyone else. The usual answer is a pool **plus** a bound on how long any one request may hold a worker.
# With `request_timeout`, a worker held by a slow client is freed after that many seconds:

# %%
if hasattr(sockserve.TCPServer, "request_timeout"):
    bounded = mishaps.slow_crowd(sockserve.ThreadPoolTCPServer, slow_clients=8, hold=1.0, pool_size=4,
                                 request_timeout=0.2)
    print("pool of 4, request_timeout = 0.2: the quick client was answered before the slow ones let go:",
          bounded.quick_waited < 0.8 * bounded.hold)
else:
    print("this version of sockserve has no request_timeout")

# %% [markdown]
# **Exercise 3.** Build the deadline yourself, in the handler. Write `Deadline`, a `StreamRequestHandler` that
# answers each line in upper case and ends every connection 0.5 s after it started, whatever the client does. The
# check runs it in a pool of 2 workers with 4 clients dripping a byte every 50 ms, and times a quick client.
# (A per-read timeout is not enough, as section 2 showed; think of what can wake a handler blocked in a read.)

# %%
class Deadline(sockserve.StreamRequestHandler):
    pass  # your code here


check("wrong-deadline", Deadline)

# %% [markdown]
# ## 4. A forking server's zombies, and `collect_children`
#
# When a process ends, the kernel keeps a small record of it (its exit status) until its parent asks for it with
# `wait()`. Until then the dead child is a **zombie**: state `Z` in `/proc/PID/stat`, still taking a slot in the
# process table. A `ForkingTCPServer` forks a child per request, so it must reap them: `collect_children()` calls
# `waitpid()` for its children, and `serve_forever` calls it after every loop iteration (`service_actions`).
# Below, a forking server handles three requests driven by hand (`get_request`, then `process_request`), so that no
# loop runs to reap them:

# %%
if mishaps.process_state(os.getpid()):
    run = mishaps.zombies(children=3)
    print(f"{run.children} children replied and exited; their states:", run.before,
          f"(the server tracks {run.active_before} in active_children)")
    print("after collect_children():", [state or "gone" for state in run.after],
          f"(active_children: {run.active_after})")
else:
    print("this system has no /proc/PID/stat (not Linux): `ps -o pid,stat` shows the same states")

# %% [markdown]
# A zombie holds no memory and no sockets, only a process-table slot and its status, but a server that never reaps
# runs out of process ids after enough requests. `ForkingMixIn.max_children` bounds the children alive at once;
# when reached, the server reaps (waiting if it must) before it forks again.
#
# **Exercise 4.** Write `zombie_pids(pids)`: those of the given process ids whose state in `/proc/PID/stat` is `Z`,
# in the order given. Careful: the line reads `PID (command name) STATE ...`, and a command name can contain spaces
# and parentheses; and a child already reaped has no `/proc` entry at all.

# %%
def zombie_pids(pids):
    pass  # your code here


check("wrong-zombies", zombie_pids)

# %% [markdown]
# ## 5. Forty milliseconds from nowhere: Nagle and delayed ACKs
#
# A handler writes its reply in two small pieces (a header line, then the body), and the client waits for both
# before it sends its next request. Two TCP features, each sensible alone, meet here. **Nagle's algorithm** (on by
# default) holds back a small write while an earlier one is not yet acknowledged, to save packets. **Delayed ACK**
# makes the client wait up to about 40 ms (on Linux) before acknowledging, hoping to send its ACK along with data of
# its own. The client has nothing to send until the reply is complete, so both wait for the other until the timer
# runs out. `StreamRequestHandler.disable_nagle_algorithm = True` sets `TCP_NODELAY` on the connection:

# %%
with_nagle = mishaps.exchange_times(disable_nagle_algorithm=False, exchanges=20)
without = mishaps.exchange_times(disable_nagle_algorithm=True, exchanges=20)
ratio = statistics.median(with_nagle) / statistics.median(without)
print("with Nagle's algorithm, the median exchange is more than 10 times slower:", ratio > 10)

# %% tags=["nbval-ignore-output"]
print(f"median exchange: {mishaps.median_ms(with_nagle):.2f} ms with Nagle, "
      f"{mishaps.median_ms(without):.3f} ms with TCP_NODELAY ({ratio:.0f}x)")
print("the first four exchanges with Nagle, in ms:", [round(t * 1000, 2) for t in with_nagle[:4]])

# %% [markdown]
# Look at the first exchanges: a new connection acknowledges at once for a while ("quick ACK" mode), so the delay
# can set in only after them. Two fixes: send the reply in one write (buffer it, `wbufsize`, or join the pieces), or
# turn Nagle off for protocols made of small request/reply exchanges. The server's own code did nothing slow, which is why
# this one is hard to find without measuring.
#
# **Exercise 5.** Write `TwoLines`, a `StreamRequestHandler` that answers each line with two lines:
# `b"length N\n"` (N, the line's length in bytes, newline included) and then the line itself, fast: the check
# times 15 exchanges.

# %%
class TwoLines(sockserve.StreamRequestHandler):
    pass  # your code here


check("wrong-nagle", TwoLines)

# %% [markdown]
# ## 6. `shutdown(SHUT_WR)` versus `close()`: half-closing
#
# Some protocols mark the end of a request by the end of the stream: the client sends everything, then says "that
# is all", and the server replies after reading to end of file. `close()` cannot say that and still read the reply,
# since it gives up the socket both ways. `shutdown(socket.SHUT_WR)` sends the FIN and keeps the socket open for
# reading: a **half-close**. Three clients send 1000 bytes to a server that reads to end of file (waiting 1 s at
# most), then replies:

# %%
for half in mishaps.half_close():
    print(f"{half.how:28} -> {half.reply!r} {half.note}")

# %% [markdown]
# The server side does the same when it finishes: `shutdown_request(request)` calls `request.shutdown(SHUT_WR)`
# and **then** `close_request(request)`. Why both? `close()` only releases this process's descriptor; the kernel
# sends the FIN when the *last* descriptor of the connection is closed. A forked child, a `dup()` handed to a
# logger, a `makefile()` still alive: any of them keeps the connection open after `close()`, and the client waits.
# `shutdown()` acts on the connection itself, so the client sees end of file at once. Below, a handler hands a
# duplicate of its connection to "a logger" that keeps it for a while:

# %%
print("shutdown(SHUT_WR), then close(): the client saw end of file at once:", mishaps.eof_seen(shutdown_first=True))
print("close() alone:                   the client saw end of file at once:", mishaps.eof_seen(shutdown_first=False))

# %% [markdown]
# **Exercise 6.** Write `ask_to_eof(address, data)`: connect, send all of `data`, tell the server you have sent
# everything, and return its whole reply (it replies after reading to end of file, and closes when done). The reply
# is longer than one `recv()` returns.

# %%
def ask_to_eof(address, data):
    pass  # your code here


check("wrong-half-close", ask_to_eof)

# %% [markdown]
# ## What to remember
#
# | symptom | cause | what handles it |
# |---|---|---|
# | `ConnectionResetError` (ECONNRESET) | the client reset, or closed with data unread | `handle_error`; count it, do not page anyone |
# | `BrokenPipeError` (EPIPE) | writing after the client left | `handle_error`; stop writing |
# | one client stalls everyone | a blocking read on a plain server | threads, a pool, `StreamRequestHandler.timeout` |
# | a pool stalls under slow clients | every worker held by a dripping client | a total deadline: `request_timeout`, or one you build |
# | `Z` processes pile up | children nobody waited for | `collect_children()` (`service_actions`), `max_children` |
# | about 40 ms per small exchange | Nagle meets delayed ACK | one write per reply, or `disable_nagle_algorithm` |
# | the peer never sees end of file | another descriptor keeps the connection open | `shutdown(SHUT_WR)` before `close()` |
