# %% [markdown]
# # 10 · The kernel's view
#
# **The question.** A server's code sees little: `accept()` returns a connection, `read()` returns bytes or
# end-of-file. Meanwhile the kernel holds much more for it: connections whose handshake is done but which nobody has
# accepted yet, handshakes half done, connections the client has closed and the server has not, closed connections
# that linger for a minute. Which hook creates what, and what do those states tell you about a server?
#
# On Linux the kernel lists every TCP socket in `/proc/net/tcp` (and `/proc/net/tcp6`); `sockserve.kernel.view` reads
# them for one server's port and counts its sockets per state, on the server's side and on the side of clients on
# this machine. Each scene below builds one situation on `127.0.0.1`, reads the kernel, and cleans up.

# %%
import inspect
import socket

import sockserve
from sockserve.workbook import kernelscenes
from sockserve.kernel import view as kernelview

if kernelview.available():
    print("The kernel's view is available here: this system has /proc/net/tcp.")
else:
    print(kernelview.NOT_AVAILABLE)
    print("Read the lesson anyway: each scene below prints the same sentence instead of its readings.")

# %% [markdown]
# ## 1. Construction: `server_bind`, `server_activate`, `fileno`
#
# `TCPServer.__init__` makes a socket, then calls two hooks: `server_bind()` gives the socket its address and
# `server_activate()` calls `listen()`. Passing `bind_and_activate=False` skips both, so we can call them one at a
# time and ask the kernel after each:

# %%
print(kernelscenes.construction(request_queue_size=5))

# %% [markdown]
# A bound socket owns its port but is in no table a connection could find: a client is refused exactly as if
# nothing were there. The **LISTEN** socket appears with `server_activate()`, and with it the *listen queue*, whose
# maximum is the number given to `listen()`. `fileno()` is the descriptor that `serve_forever` waits on (the
# `selectors` loop asks the kernel "is this descriptor readable?", which for a listening socket means "is the queue
# non-empty?"). Here are the two hooks, as sockserve writes them:

# %%
print(inspect.getsource(sockserve.TCPServer.server_activate))
print("sockserve's request_queue_size is socket.SOMAXCONN:", sockserve.TCPServer.request_queue_size == socket.SOMAXCONN,
      "(the standard library's is 5)")

# %% [markdown]
# ## 2. A burst against a small backlog
#
# The listen queue holds connections the kernel has completed for a server that has not accepted them yet. Below, six
# clients connect at once to a plain `TCPServer` whose `request_queue_size` is 2, while it is not accepting; then it
# serves them one by one:

# %%
burst = kernelscenes.burst(backlog=2, clients=6)
print(burst)

# %% [markdown]
# Linux queues one connection more than the backlog (3 here) and then **drops** the next SYNs without a word: those
# clients stay in **SYN-SENT** and send their SYN again after 1 s (then 3 s, 7 s, ...). A dropped SYN is not an
# error: its client is only late, by a second or more, which is why a latency histogram with a bump at 1 s points at
# a full listen queue. (A client can also be *reset*, when the kernel completed its handshake without queueing it and
# then had nowhere to deliver its request: lesson 05's larger burst, whose clients send at once, counts both.)
# The kernel's readings, asked for 50 times a second while the server served them (the line under the figure says
# how many a busy machine gave), and when each client got its reply:

# %% tags=["nbval-ignore-output"]
# %matplotlib inline
from sockserve.plots.kernel import describe_kernel_view, plot_kernel_view
from sockserve.workbook import show

if burst.series:
    show(plot_kernel_view(burst.series), describe_kernel_view(burst.series))
    print(kernelscenes.reply_times(burst))

# %% [markdown]
# Read it left to right. Shaded: the moments the queue was full, when new SYNs were dropped. On the clients' side,
# SYN-SENT is a client whose SYN was dropped and is still trying, ESTABLISHED one the kernel queued; lines with equal
# counts are drawn a little apart, each with its own marker and dashes, so one never hides the other. Once the server
# accepts, it answers and closes each connection first: the client's side passes CLOSE-WAIT until the client closes
# too (briefly here: each client closes as soon as it has read its reply and the end of file), and the server's side
# passes FIN-WAIT on its way to TIME-WAIT, which stays on the side that closed first (section 4 explains why that
# matters). A client whose SYN was retried is served within milliseconds of getting in, too quickly for a sampler
# reading 50 times a second to catch it queued. The lines under the figure say which states your run's readings
# caught, and when each client was answered.

# %% [markdown]
# ## 3. The handshake: SYN-SENT, SYN-RECV, ESTABLISHED
#
# ```
# client                        server (LISTEN)
#   SYN-SENT   ── SYN ──────▶    SYN-RECV      (the kernel answers; no code runs)
#   ESTABLISHED ◀── SYN+ACK ──
#              ── ACK ──────▶    ESTABLISHED   (queued: accept() will return it)
# ```
#
# On loopback all of this happens inside `connect()`, too fast to see, so the scene holds each state still: a
# listener with `TCP_DEFER_ACCEPT` keeps a handshake in SYN-RECV until its client sends data, and a full queue keeps
# the next client in SYN-SENT.

# %%
print(kernelscenes.handshake())

# %% [markdown]
# ## 4. Teardown: the side that closes first keeps TIME-WAIT
#
# ```
# closes first                  closes second
#   FIN-WAIT-1  ── FIN ──────▶  CLOSE-WAIT   (read() returns b"": end of file)
#   FIN-WAIT-2  ◀── ACK ──────
#   TIME-WAIT   ◀── FIN ──────  LAST-ACK     (after its own close())
#       (60 s)  ── ACK ──────▶  (gone)
# ```
#
# The side that sends the first FIN waits in **TIME-WAIT** for a minute, so that a late packet of this connection
# cannot be taken for part of a new one with the same addresses. Three exchanges each way:

# %%
print(kernelscenes.teardown(closes_first="client"))
print(kernelscenes.teardown(closes_first="server"))

# %% [markdown]
# When the server closes first (a handler that returns after its reply, as most do), the TIME-WAIT sockets are on
# **its** port: lesson 02's "Address already in use" on restart is exactly this (hence `allow_reuse_address`). A busy
# server that closes first piles up thousands of them; a protocol in which the client closes first (the server
# answers, then waits for end of file before it closes, as `teardown` does above) leaves them with the clients.
#
# ## 5. CLOSE-WAIT: the connection nobody closed
#
# CLOSE-WAIT is the state of a connection whose peer has closed and whose own side has not. A few, briefly, are
# normal; a count that only grows means the server forgets connections, each holding a descriptor until the process
# runs out of them. Below, a server that never closes a connection:

# %%
print(kernelscenes.forgotten_close(connections=3))

# %% [markdown]
# The server's code saw nothing wrong: it never read from those connections again, so it never learnt that the
# clients had left. The kernel knew. This is why `shutdown_request` always closes the request, even when the handler
# raised, and why a handler must notice end-of-file (`rfile.readline()` returning `b""`) rather than wait for more.
#
# ## 6. Watch it live (optional)
#
# Press *Start* on the server, then *Send*: each request of this traffic opens a new connection, and the kernel panel
# shows the connections come and go, and TIME-WAIT pile up on the side that closes first. (Nothing runs until you
# press a button; `stop_all()` at the end of the lesson stops whatever you started.)

# %% tags=["nbval-ignore-output"]
from sockserve.lab import KernelPanel, ServerPanel, TrafficPanel, stop_all

live = ServerPanel(kind="threading", workload="echo")
display(live, TrafficPanel(live, clients=4, duration=3.0, connection="new"), KernelPanel(live))

# %% [markdown]
# ## Exercises
#
# Reference solutions: `solutions/10-the-kernels-view.py` (a teacher's copy: `sockserve lab --solutions`).
#
# **Exercise 1.** A handler that forgets its clients leaves CLOSE-WAIT behind. Write `close_wait_count(server,
# clients=3)`: `server` is already serving on `127.0.0.1`; let `clients` clients each connect, send a line, read the
# reply and close, then return how many of the server's sockets the kernel holds in CLOSE-WAIT. The check runs it
# against handlers that forget none, some or all of their connections.

# %%
import time

from sockserve.exercises import check


def close_wait_count(server, clients=3):
    pass  # your code here


check("kernel-close-wait", close_wait_count)


# %% [markdown]
# **Exercise 2.** Write `BacklogServer`, a `TCPServer` whose constructor takes a `backlog` keyword argument
# (`BacklogServer(address, handler, backlog=3)`) and whose `server_activate()` listens with it. The check reads the
# kernel's listen queue to see what you asked for.

# %%
class BacklogServer(sockserve.TCPServer):
    pass  # your code here: __init__ with a backlog argument, and server_activate


check("kernel-backlog", BacklogServer)

# %%
stopped = stop_all()   # stops any server or load the panels above started
