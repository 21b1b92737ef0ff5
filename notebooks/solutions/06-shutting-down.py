"""Reference answers for notebooks/06-shutting-down.ipynb (and the stubs it hands out)."""

import sockserve


def stop(server, thread):
    server.shutdown()       # ask serve_forever to return, and wait until it has
    thread.join()
    server.server_close()   # close the socket; waits for handler threads (block_on_close)


class QuickCloseServer(sockserve.ThreadingTCPServer):
    block_on_close = False
    daemon_threads = True


def stop_within(server, seconds):
    report = server.drain(seconds)
    server.server_close()
    return report


# The stubs the notebook gives the learner.
def stop_stub(server, thread):
    pass  # your code here


class QuickCloseServerStub(sockserve.ThreadingTCPServer):
    pass  # your code here: two class attributes


def stop_within_stub(server, seconds):
    pass  # your code here


SOLUTIONS = {
    "shutdown-stop": (stop,),
    "shutdown-quick-close": (QuickCloseServer,),
    "shutdown-drain": (stop_within,),
}
EMPTY_ATTEMPTS = {
    "shutdown-stop": (stop_stub,),
    "shutdown-quick-close": (QuickCloseServerStub,),
    "shutdown-drain": (stop_within_stub,),
}
