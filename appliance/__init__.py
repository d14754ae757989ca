"""appliance: an offline MLOps platform in one process, for one machine.

`appliance.connect()` opens the registry for notebooks and scripts; `connect(URL)` reaches a
box's server over HTTP with the same client. Importing this package is cheap: torch and
transformers are imported only when a model is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from appliance.client import Client


def connect(
    where: str | None = None,
    *,
    home: str | None = None,
    token: str | None = None,
    cache: str | Path | None = None,
    **overrides: Any,
) -> Client:
    """A client of the appliance at `where`: a server's URL (`http://box:8765`, with `token`,
    default $APPLIANCE_TOKEN, and model files downloaded under `cache`), or a home folder on this
    machine (default: `home`, else settings, with setting `overrides`)."""
    from appliance.client import Client
    from appliance.errors import InvalidInput

    if where is not None and where.startswith(("http://", "https://")):
        if home is not None or overrides:
            given = ", ".join(["home"] * (home is not None) + sorted(overrides))
            raise InvalidInput(f"{given} apply to a home on this machine, not to a server's URL")
        return Client.remote(where, token=token, cache=cache)
    if token is not None or cache is not None:
        raise InvalidInput("token and cache apply to a server's URL: connect('http://box:8765')")
    if where is not None and home is not None:
        raise InvalidInput(f"give the home once: connect({where!r}) or connect(home=...)")
    return Client.open(home=where if where is not None else home, **overrides)


__all__ = ["__version__", "connect"]
