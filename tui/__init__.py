"""The Textual terminal UI over the appliance's services.

It talks to the core through `appliance.services.Services`, never through SQL, and the core
never imports this package. `run_tui` is the entry point the CLI calls.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.services import Services


def run_tui(services: Services, server_url: str | None = None) -> None:
    """Run the terminal UI on `services` until the user quits (`q`)."""
    from tui import graphics

    # The terminal is asked what pictures it shows while the app's modules load: it can only be
    # asked before Textual reads stdin, and asking takes up to 0.2 s.
    image_protocol = graphics.start(os.environ)
    from tui.app import ApplianceApp  # Textual loads only when the UI is asked for

    ApplianceApp(services, server_url, image_protocol=image_protocol()).run()
