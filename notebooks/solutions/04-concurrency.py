"""Reference answers for notebooks/04-concurrency.ipynb (and the stubs it hands out)."""

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


# The stubs the notebook gives the learner.
class MyThreadingServerStub(sockserve.TCPServer, sockserve.ThreadingMixIn):
    pass


def ideal_rps_stub(kind, workload, clients, ms, cores):
    pass  # your code here


SOLUTIONS = {
    "concurrency-mixin-order": (MyThreadingServer,),
    "concurrency-ideal-throughput": (ideal_rps,),
}
EMPTY_ATTEMPTS = {
    "concurrency-mixin-order": (MyThreadingServerStub,),
    "concurrency-ideal-throughput": (ideal_rps_stub,),
}
