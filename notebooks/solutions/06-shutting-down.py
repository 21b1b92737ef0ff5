"""Reference answers for notebooks/06-shutting-down.ipynb (the stubs it hands out are registered with each exercise)."""

import threading

import sockserve


def stop(server, thread):
    server.shutdown()       # ask serve_forever to return, and wait until it has
    thread.join()
    server.server_close()   # close the socket; waits for handler threads (block_on_close)


class QuickCloseServer(sockserve.ThreadingTCPServer):
    daemon_threads = True   # server_close() does not wait for daemon threads, and they never keep Python alive


def stop_within(server, seconds):
    report = server.drain(seconds)
    server.server_close()
    return report


class StopHandler(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            if line.strip() == b"STOP":
                self.wfile.write(b"bye\n")
                # shutdown() waits for serve_forever to return, which (in a plain server) waits for this
                # handler: ask from another thread, or socketserver would wait forever.
                threading.Thread(target=self.server.shutdown).start()
                return
            self.wfile.write(line)


SOLUTIONS = {
    "shutdown-stop": (stop,),
    "shutdown-quick-close": (QuickCloseServer,),
    "shutdown-drain": (stop_within,),
    "shutdown-stop-handler": (StopHandler,),
}
# Words the first failure's hint must not say (it would give the answer away).
GIVEAWAYS = {
    'shutdown-stop': ['shutdown()', 'server_close', 'join'],
    'shutdown-quick-close': ['daemon_threads'],
    'shutdown-drain': ['drain('],
    'shutdown-stop-handler': ['threading.Thread(target=self.server.shutdown)'],
}
