"""Failed authentication throttled per client address. After `FREE_FAILURES` wrong tokens from
one address, that address waits before its next try (any token, the right one too), the wait
doubling with each further failure up to `MAX_WAIT_S`; a success forgets its failures. Answers
429 with `Retry-After`. Guessing a token by trying many (300 wrong ones took 0.2 s, then the
right one was accepted at once) becomes hours per thousand guesses. Runs on the event loop
only (the token guard is async), so it needs no lock; it remembers at most `MAX_CLIENTS`
addresses, forgetting the quietest first."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from appliance.errors import ApplianceError

FREE_FAILURES = 5
FIRST_WAIT_S = 1.0
MAX_WAIT_S = 300.0
MAX_CLIENTS = 10_000


class TooManyAttempts(ApplianceError):
    http_status = 429

    def __init__(self, wait_s: float):
        self.retry_after = max(1, math.ceil(wait_s))
        super().__init__(
            f"too many failed authentications from this address: wait {self.retry_after} s "
            "before trying again"
        )


class AuthThrottle:
    def __init__(self) -> None:
        self._clients: OrderedDict[str, tuple[int, float]] = OrderedDict()  # failures, not before

    def check(self, client: str) -> None:
        """Raise TooManyAttempts while `client` must wait."""
        wait = self._clients.get(client, (0, 0.0))[1] - time.monotonic()
        if wait > 0:
            raise TooManyAttempts(wait)

    def failed(self, client: str) -> None:
        failures = self._clients.pop(client, (0, 0.0))[0] + 1
        wait = 0.0
        if failures > FREE_FAILURES:
            wait = min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** (failures - FREE_FAILURES - 1))
        self._clients[client] = (failures, time.monotonic() + wait)
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)
