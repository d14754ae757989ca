"""Access rules. With no token the server only listens on loopback (enforced at start); with a
token, every non-read route requires `Authorization: Bearer <token>`, compared in constant time.
Predict routes (opt `predict=True`) require it only when `predict_requires_token` is set.
Wrong tokens are throttled per client address (`throttle.py`: 429 with `Retry-After`).
A request that names another home (`X-Appliance-Home-Id`) is refused; one naming none is served."""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from appliance.errors import ApplianceError, InvalidInput
from appliance.server.record import HOME_HEADER, INSTANCE_HEADER
from appliance.server.throttle import AuthThrottle
from appliance.settings import Settings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def require_token(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    # async on purpose: Litestar runs a sync guard on its thread pool, a hop per request.
    settings: Settings = connection.app.state.settings
    if not settings.token or connection.scope.get("method", "GET") in READ_METHODS:
        return
    if handler.opt.get("predict") and not settings.predict_requires_token:
        return
    check_token(connection, "send the server's token as 'Authorization: Bearer <token>'")


def check_token(connection: ASGIConnection, refusal: str) -> None:
    """The request carries the server's token (a token is set), else 401 with `refusal`; wrong
    tokens are throttled per client address."""
    settings: Settings = connection.app.state.settings
    throttle: AuthThrottle = connection.app.state.auth_throttle
    client = connection.client.host if connection.client else ""
    throttle.check(client)
    header = connection.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), settings.token.encode()
    ):
        if header:  # a guess; a request that forgot its token guesses nothing
            throttle.failed(client)
        raise NotAuthorizedException(refusal)
    throttle.succeeded(client)


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


class WrongHome(ApplianceError):
    """The request was meant for the server of another home."""

    http_status = 421  # Misdirected Request: this server cannot answer for that home


class HomeCheck(ASGIMiddleware):
    """Refuses requests whose `X-Appliance-Home-Id` names another home (the appliance's own
    clients always send it), and stamps every answer with the home and instance it comes from:
    a client checks those before trusting the address a home's record gives."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, home: Path, home_id: str, instance: str):
        self.home = home
        self.home_id = home_id
        self._header = HOME_HEADER.encode()
        self._stamp = [
            (self._header, home_id.encode()),
            (INSTANCE_HEADER.encode(), instance.encode()),
        ]

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        given = next((v for k, v in scope["headers"] if k == self._header), None)
        if given is not None and given.decode("latin-1").strip() != self.home_id:
            raise WrongHome(
                f"this server serves the home {self.home} (id {self.home_id}); the request comes "
                f"from a client of home id {given.decode('latin-1').strip()}: start a server for "
                f"that home (`appliance serve`), or set APPLIANCE_HOME to {self.home}"
            )

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self._stamp]
            await send(message)

        await next_app(scope, receive, stamped)
