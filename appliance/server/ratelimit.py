"""A per-token rate limit on predict (`predict_rate_limit` requests per second, bursts of as
many): a token bucket per principal, answered 429 with the seconds until the next token as
`Retry-After`. On the event loop only (the guard is async), so it needs no lock; it keeps at
most `MAX_KEYS` buckets, forgetting the least recently used."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from appliance.errors import ApplianceError

MAX_KEYS = 10_000


class RateLimited(ApplianceError):
    http_status = 429

    def __init__(self, name: str, rate: float, wait_s: float):
        self.retry_after = max(1, math.ceil(wait_s))
        super().__init__(
            f"'{name}' sends more than {rate:g} predictions per second (predict_rate_limit): "
            f"wait {self.retry_after} s"
        )


class RateLimit:
    def __init__(self, rate: float):
        self.rate = rate
        self.burst = max(1.0, rate)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, key: str) -> None:
        """One request of `key`, or RateLimited when its bucket is empty."""
        now = time.monotonic()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            raise RateLimited(key, self.rate, (1 - tokens) / self.rate)
        self._buckets[key] = (tokens - 1, now)
        while len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)
