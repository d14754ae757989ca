"""The CLI's shared state: settings overrides from the root options, and the Services opened
lazily on first use (so `--help` and bad arguments never touch the registry)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from appliance.services import Services


@dataclass
class CliState:
    overrides: dict[str, Any] = field(default_factory=dict)
    _services: Services | None = None

    def services(self) -> Services:
        if self._services is None:
            from appliance.services import Services

            self._services = Services.open(**self.overrides)
        return self._services

    def close(self) -> None:
        if self._services is not None:
            self._services.close()
            self._services = None


def services() -> Services:
    """The Services of the running command."""
    return click.get_current_context().find_object(CliState).services()  # type: ignore[union-attr]


def home_unless_chosen(home: Path) -> None:
    """Open this command's Services in `home` unless --home or APPLIANCE_HOME chose one."""
    state = click.get_current_context().find_object(CliState)
    assert state is not None and state._services is None  # before the Services open
    state.overrides.setdefault("home", home)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@contextmanager
def without_server(command: str) -> Iterator[None]:
    """For a change a server would have made (a deploy, a rollback, a job run) that the CLI
    makes itself because it found no server to send it to: hold the home's lock while making it,
    so that no server starts meanwhile and so that a server that runs but did not answer is
    never taken for none (the CLI would rewrite a deployment the server does not serve)."""
    from appliance.errors import Conflict
    from appliance.server.lock import HomeBusy, HomeLock

    try:
        lock = HomeLock(services().settings.home, holder=f"appliance {command}")
    except HomeBusy as busy:
        if busy.holder != "server":
            raise
        raise Conflict(
            f"this home's server (pid {busy.pid}) is running but did not answer, so nothing was "
            f"changed: check that it is healthy (its log), or stop it, then try again"
        ) from None
    with lock:
        yield
