"""Who the current code acts for, for the audit trail: the user of the HTTP request being
answered, else the process's actor: `APPLIANCE_ACTOR` where set (`appliance web` sets it for
the TUI it runs for a browser's user), else `local` (the CLI and the TUI on the box).

A context variable: it follows a request into its worker threads (anyio copies the context)
and into the registry writer (`Writer.submit` runs each job in its submitter's context), so
`record_event` and the audit writer read it without every call passing it along."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar

LOCAL_ACTOR = "local"
_actor: ContextVar[str] = ContextVar(
    "appliance_actor", default=os.environ.get("APPLIANCE_ACTOR") or LOCAL_ACTOR
)


def current_actor() -> str:
    return _actor.get()


def set_actor(name: str) -> None:
    """For the rest of this context (an HTTP request's task)."""
    _actor.set(name)


@contextlib.contextmanager
def acting_as(name: str) -> Iterator[None]:
    token = _actor.set(name)
    try:
        yield
    finally:
        _actor.reset(token)
