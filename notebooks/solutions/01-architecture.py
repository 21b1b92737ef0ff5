"""Reference answers for notebooks/01-architecture.ipynb (the stubs it hands out are registered with each exercise)."""

HOOK_ORDER = [
    "get_request",
    "verify_request",
    "process_request",
    "finish_request",
    "setup",
    "handle",
    "finish",
    "shutdown_request",
    "close_request",
]


class CountingMixIn:
    count = 0

    def process_request(self, request, client_address):
        self.count += 1
        super().process_request(request, client_address)


SOLUTIONS = {
    "arch-hook-order": (HOOK_ORDER,),
    "arch-counting-mixin": (CountingMixIn,),
}
# Words the first failure's hint must not say (it would give the answer away).
GIVEAWAYS = {
    'arch-hook-order': ['get_request', 'verify_request', 'finish_request', 'shutdown_request'],
    'arch-counting-mixin': ['process_request', 'super()'],
}
