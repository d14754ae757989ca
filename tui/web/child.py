"""The TUI one browser tab drives (`python -m tui.web.child`, started by textual-serve with its
web driver). Who logged in reaches it through the environment, never argv:

- `APPLIANCE_ACTOR`, `APPLIANCE_ROLE`: the principal's name and role;
- `APPLIANCE_HOME`: the home `appliance web` serves.

What it may do follows the role. A viewer or predictor gets a read-only TUI: every write to the
registry is refused (`Forbidden`, shown as the TUI's error notification) and it has no link to
the home's server, so nothing is deployed, rolled back, run or predicted from it. A developer or
admin gets the TUI of `appliance up --no-server`, linked to the home's running server when there
is one (it never starts a second one: one server per home). Only an admin's child keeps the
server's admin token in its environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from appliance.access.roles import Forbidden, Principal, Role

ACTOR, ROLE = "APPLIANCE_ACTOR", "APPLIANCE_ROLE"
_SECRETS = ("APPLIANCE_TOKEN", "APPLIANCE_TOKEN_FILE")


def child_environment(base: Mapping[str, str], principal: Principal, home: str) -> dict[str, str]:
    """`base` (textual-serve's environment for the child) with who it runs as."""
    environment = dict(base)
    environment.update({ACTOR: principal.name, ROLE: principal.role.name, "APPLIANCE_HOME": home})
    environment["APPLIANCE_TUI_IMAGES"] = "halfblocks"  # no terminal to ask: a browser's xterm
    if principal.role < Role.admin:
        # Empty, not absent: an empty variable outranks appliance.toml's token and token_file.
        environment.update(dict.fromkeys(_SECRETS, ""))
    return environment


def read_only(name: str, role: Role) -> Callable[..., Any]:
    """A registry `write` that refuses: the child of a viewer or predictor."""

    def write(job: object, durable: bool = True) -> Any:
        raise Forbidden(
            f"'{name}' is a {role.name}: the web UI is read-only below the developer role"
        )

    return write


def main() -> None:
    from appliance.access.actor import acting_as
    from appliance.server.client import ServerClient
    from appliance.services import Services
    from tui import run_tui

    name, role = os.environ[ACTOR], Role.named(os.environ[ROLE])
    with Services.open() as services, acting_as(name):
        server_url = None
        if role < Role.developer:
            setattr(services.registry, "write", read_only(name, role))  # noqa: B010
        elif (client := ServerClient.find(services.settings)) is not None:
            server_url = client.base_url
            client.close()
        run_tui(services, server_url=server_url)


if __name__ == "__main__":
    main()
