"""Browser sessions: a random id (the cookie's value, never the token) mapped, in this process
only, to the principal that logged in and the moment its login ends. A restart logs everyone
out; at most `MAX_SESSIONS` are kept, the oldest dropped first."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from appliance.access.roles import Principal

MAX_SESSIONS = 1_000


class Sessions:
    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.monotonic):
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._open: OrderedDict[str, tuple[Principal, float]] = OrderedDict()  # id: who, until

    def open(self, principal: Principal) -> str:
        """A new session for `principal`; its id goes in the cookie."""
        session = secrets.token_urlsafe(32)
        self._open[session] = (principal, self._clock() + self.lifetime_s)
        while len(self._open) > MAX_SESSIONS:
            self._open.popitem(last=False)
        return session

    def principal(self, session: str | None) -> Principal | None:
        """Who `session` is, or None when it is unknown or has expired."""
        found = self._open.get(session or "")
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._open[session or ""]
            return None
        return found[0]

    def seconds_left(self, session: str) -> float:
        found = self._open.get(session)
        return max(0.0, found[1] - self._clock()) if found else 0.0

    def close(self, session: str) -> None:
        self._open.pop(session, None)
