"""The CLI's shared state: settings overrides from the root options, and the Services opened
lazily on first use (so `--help` and bad arguments never touch the registry)."""

from __future__ import annotations

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
