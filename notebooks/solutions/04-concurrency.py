"""Reference answers for notebooks/04-concurrency.ipynb (the stubs it hands out are registered with each exercise)."""

import threading

import sockserve


class MyThreadingServer(sockserve.ThreadingMixIn, sockserve.TCPServer):
    pass  # the mixin first, so its process_request is found first


def ideal_rps(kind, workload, clients, ms, cores):
    per_second = 1000 / ms              # one worker doing one request after another
    if kind == "plain":
        return per_second               # one request at a time
    if workload == "io":
        return clients * per_second     # every request waits at the same time
    if kind == "threading":
        return per_second               # the GIL: one thread computes at a time
    return min(clients, cores) * per_second  # forking: one process per core computes


class OwnThreadingMixIn:
    def process_request(self, request, client_address):
        def work():
            try:
                self.finish_request(request, client_address)   # runs the handler
            except Exception:
                self.handle_error(request, client_address)     # report, do not crash the thread
            finally:
                self.shutdown_request(request)                 # always end the connection

        threading.Thread(target=work, daemon=True).start()     # and return to the loop at once


SOLUTIONS = {
    "concurrency-mixin-order": (MyThreadingServer,),
    "concurrency-ideal-throughput": (ideal_rps,),
    "concurrency-own-threads": (OwnThreadingMixIn,),
}
# Words the first failure's hint must not say (it would give the answer away).
GIVEAWAYS = {
    'concurrency-mixin-order': ['ThreadingMixIn, sockserve.TCPServer'],
    'concurrency-ideal-throughput': ['1000 / ms', 'min('],
    'concurrency-own-threads': ['threading.Thread', 'finish_request', 'shutdown_request', 'handle_error'],
}
