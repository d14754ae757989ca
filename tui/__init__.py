"""The Textual terminal UI over the appliance's services.

It talks to the core through `appliance.services.Services`, never through SQL, and the core
never imports this package. `run_tui` is the entry point the CLI calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.services import Services


def run_tui(services: Services, server_url: str | None = None) -> None:
    """Run the terminal UI on `services` until the user quits (`q`)."""
    from tui.app import ApplianceApp  # Textual loads only when the UI is asked for

    ApplianceApp(services, server_url).run()
