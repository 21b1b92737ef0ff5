# %% [markdown]
# # 01 · Architecture: servers, handlers, and one-hook mixins
#
# **The question.** When one request reaches a socket server, which methods run, defined in which class, in which
# thread or process? And how can a *mixin* turn a one-at-a-time server into a threaded or forking one by changing a
# single method?
#
# Everything below is read from the package itself (the classes' `__mro__`, `__bases__` and `__subclasses__()`) or
# measured on live servers on `127.0.0.1`; nothing is typed in by hand, so it stays true when the code changes.

# %%
import warnings

import sockserve
from sockserve.plots import diagrams
from sockserve.workbook import show, where_handled

# ForkingMixIn forks this kernel, which runs a few threads of its own; Python warns about
# fork() in a threaded process. The forked child only handles one request and exits.
warnings.filterwarnings("ignore", message=r"This process .* is multi-threaded")

# %% [markdown]
# ## 1. Two abstractions
#
# `socketserver` (and sockserve, which keeps its design) splits a network service in two:
#
# * a **server** owns the *connections*: it binds, listens, accepts, and decides where each request is handled;
# * a **request handler** owns the *data* of one request: the server creates one handler per request, and the
#   handler's constructor runs `setup()`, `handle()`, `finish()`.
#
# Here is the server family, drawn from the classes. At the top, the plain servers: an arrow points from a class
# to its base. Below them, every *combined* class sits in the row of its mixin and the column of its server:
# `ThreadingTCPServer` is `ThreadingMixIn` + `TCPServer`. The numbered path is `ThreadingTCPServer.__mro__`, the order
# in which Python looks a method up: first the class itself, then the mixin, then the server and its bases.

# %%
fig = diagrams.draw_class_tree(highlight=sockserve.ThreadingTCPServer)
show(fig, diagrams.describe_class_tree(highlight=sockserve.ThreadingTCPServer))

# %% [markdown]
# The same tree as text, and the handlers:

# %%
print(diagrams.text_tree(sockserve.BaseServer, which="all"))
print()
print(diagrams.text_tree(sockserve.BaseRequestHandler))

# %% [markdown]
# `UDPServer` is a `TCPServer` with a different `socket_type`, the Unix servers differ only in `address_family`,
# and every combined class is a one-liner: `class ThreadingTCPServer(ThreadingMixIn, TCPServer): pass`.
#
# ## 2. Which class's code runs for each hook
#
# A request passes through a fixed list of *hooks*. For each server class, `diagrams.hook_owners` walks its
# `__mro__` and reports the class whose definition wins:

# %%
classes = [sockserve.TCPServer, sockserve.UDPServer, sockserve.ThreadingTCPServer, sockserve.ForkingTCPServer]
owners = {cls.__name__: diagrams.hook_owners(cls) for cls in classes}
print(f"{'hook':24}" + "".join(f"{cls.__name__:20}" for cls in classes))
for hook in diagrams.REQUEST_HOOKS:
    print(f"{hook:24}" + "".join(f"{owners[cls.__name__][hook]:20}" for cls in classes))

# %% [markdown]
# Read the `process_request` row: it is the **only** hook the mixins change. Everything else (accepting,
# verifying, running the handler, closing) is the server's own code. Because the mixin comes *first* in the class
# statement, its `process_request` is found before `BaseServer`'s in the MRO:

# %%
for cls in (sockserve.ThreadingTCPServer, sockserve.ForkingUDPServer):
    print(cls.__name__, "->", " -> ".join(k.__name__ for k in cls.__mro__))

# %% [markdown]
# ## 3. The request lifecycle
#
# For one request, the loop calls, in order:
#
# ```
# serve_forever()
#   _handle_request_noblock()
#     get_request()            -> request, client_address      (TCP: accept();  UDP: recvfrom())
#     verify_request()         -> True to go on
#     process_request()        <- the mixins override this one
#       finish_request()
#         RequestHandlerClass(request, client_address, server)
#           setup() -> handle() -> finish()
#       shutdown_request()
#         close_request()
# ```
#
# The server itself also moves through states, written down once as data in `sockserve.core.lifecycle.TRANSITIONS` and
# drawn from there. Its usual life is one chain: construction binds and activates the socket, `serve_forever()`
# serves until `shutdown()`, and the loop may then run again; `server_close()` ends it from any state.

# %%
fig = diagrams.draw_lifecycle()
show(fig, diagrams.describe_lifecycle())

# %% [markdown]
# ## 4. Live call-flow traces
#
# `sockserve.measure.trace.trace_request` builds a real server of the given class (on a subclass made for the trace, so the
# library itself is untouched), sends it one request, and records every hook as it is called, indented by nesting.
# These are the call-flow trees of the classic walk-through of `SocketServer.py`, produced by running the code. Each
# line is `DefiningClass.method()`: the class whose code ran. First the plain `TCPServer` with a
# `StreamRequestHandler`, where everything happens in the serving thread:

# %%
from sockserve.measure.trace import trace_request

print(trace_request(sockserve.TCPServer))

# %% [markdown]
# These are the hooks of the request lifecycle in section 3, in the same order, now recorded from a live server,
# each with the class whose code ran. A UDP server: `get_request()` reads a datagram (`recvmsg`) instead of
# accepting a connection, `DatagramRequestHandler.finish()` sends the reply, and there is nothing to shut down per
# request.

# %%
print(trace_request(sockserve.UDPServer))

# %% [markdown]
# `ThreadingMixIn`: `process_request()` starts a thread (the `--- new thread ---` line), and
# `process_request_thread()` in that thread does what `BaseServer.process_request()` did.

# %%
print(trace_request(sockserve.ThreadingTCPServer))

# %% [markdown]
# `ForkingMixIn`: `process_request()` forks; the child (below `--- child process ---`, recorded in the child and sent
# back to the parent) handles the request and exits, and the parent closes its copy of the connection and goes back
# to the loop, where `service_actions()` reaps the child.

# %%
print(trace_request(sockserve.ForkingTCPServer))

# %% [markdown]
# ## 5. Where did the handler run? A measurement
#
# The traces show *which* methods run. Now measure *where*: each server below handles one request whose handler
# reports its process id and thread id, which we compare with the server's.

# %%
for cls in (sockserve.TCPServer, sockserve.UDPServer, sockserve.ThreadingTCPServer, sockserve.ForkingTCPServer):
    print(f"{cls.__name__:20} {where_handled(cls)}")

# %% [markdown]
# One hook on a request's path, three behaviours: that is the whole trick of the mixin design (`ForkingMixIn` also
# uses `service_actions()`, a hook of the loop, to reap its children). The lessons on concurrency (04) measure
# what each costs.
#
# ## Exercises
#
# Reference solutions: `solutions/01-architecture.py` (a teacher's copy: `sockserve lab --solutions`). A check
# first says what your code did and which idea it misses; if the same exercise fails again, it also says what to
# change.
#
# **Exercise 1.** Without scrolling up: list, in order, the hooks a `TCPServer` with a `StreamRequestHandler` calls
# for one request, from `get_request` to `close_request`, server hooks and handler hooks together (leave out
# `serve_forever` and `_handle_request_noblock`). The check records a live server and compares.

# %%
from sockserve.exercises import check

hook_order = []  # your answer: hook names, in order

check("arch-hook-order", hook_order)


# %% [markdown]
# **Exercise 2.** Write `CountingMixIn`: like `ThreadingMixIn`, it overrides `process_request` and nothing else; it
# counts requests in `self.count` and still lets the server handle each one. The check combines it with
# `TCPServer` and with `ThreadingTCPServer` (mixin first) and sends three requests to each.

# %%
class CountingMixIn:
    pass  # your code here


check("arch-counting-mixin", CountingMixIn)
