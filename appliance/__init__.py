"""appliance: an offline MLOps platform in one process, for one machine.

`appliance.connect()` opens the registry for notebooks and scripts. Importing this package is
cheap: torch and transformers are imported only when a model is touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from appliance.client import Client


def connect(home: str | None = None, **overrides: Any) -> Client:
    """Open the appliance at `home` (default: settings) and return a client."""
    from appliance.client import Client

    return Client.open(home=home, **overrides)


__all__ = ["__version__", "connect"]
