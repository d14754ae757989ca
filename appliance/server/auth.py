"""Access rules. With no token the server only listens on loopback (enforced at start); with a
token, every non-read route requires `Authorization: Bearer <token>`, compared in constant time.
Predict routes (opt `predict=True`) require it only when `predict_requires_token` is set."""

from __future__ import annotations

import hmac
import ipaddress

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from appliance.errors import InvalidInput
from appliance.settings import Settings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def require_token(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    # async on purpose: Litestar runs a sync guard on its thread pool, a hop per request.
    settings: Settings = connection.app.state.settings
    if not settings.token or connection.scope.get("method", "GET") in READ_METHODS:
        return
    if handler.opt.get("predict") and not settings.predict_requires_token:
        return
    header = connection.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), settings.token.encode()
    ):
        raise NotAuthorizedException("send the server's token as 'Authorization: Bearer <token>'")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen_address(settings: Settings) -> None:
    """Refuse to listen beyond loopback without a token."""
    if not is_loopback(settings.host) and not settings.token:
        raise InvalidInput(
            f"listening on {settings.host} (beyond loopback) needs a token: set APPLIANCE_TOKEN "
            "or pass --token"
        )
