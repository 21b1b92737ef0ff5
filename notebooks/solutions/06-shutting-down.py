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


class StopHandler(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            if line.strip() == b"STOP":
                self.wfile.write(b"bye\n")
                self.server.shutdown()   # sockserve: safe from a handler, even in the serving thread
                return
            self.wfile.write(line)


# The stubs the notebook gives the learner.
def stop_stub(server, thread):
    pass  # your code here


class QuickCloseServerStub(sockserve.ThreadingTCPServer):
    pass  # your code here: two class attributes


def stop_within_stub(server, seconds):
    pass  # your code here


class StopHandlerStub(sockserve.StreamRequestHandler):
    def handle(self):
        pass  # your code here


SOLUTIONS = {
    "shutdown-stop": (stop,),
    "shutdown-quick-close": (QuickCloseServer,),
    "shutdown-drain": (stop_within,),
    "shutdown-stop-handler": (StopHandler,),
}
EMPTY_ATTEMPTS = {
    "shutdown-stop": (stop_stub,),
    "shutdown-quick-close": (QuickCloseServerStub,),
    "shutdown-drain": (stop_within_stub,),
    "shutdown-stop-handler": (StopHandlerStub,),
}
# Words the first failure's hint must not say (it would give the answer away).
GIVEAWAYS = {
    'shutdown-stop': ['shutdown()', 'server_close', 'join'],
    'shutdown-quick-close': ['block_on_close', 'daemon_threads'],
    'shutdown-drain': ['drain('],
    'shutdown-stop-handler': ['self.server.shutdown'],
}
