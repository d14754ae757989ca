"""The access guard: who a request is (`Authorization: Bearer <token>`, see
`appliance/access/authenticate.py`) and whether its route's rule (`appliance/access/rules.py`)
lets it through.

Authentication is required beyond loopback, when the admin `token` is set, or with
`require_auth`: then every route but the health probes needs a known token (401 without one).
Otherwise a request without a token is `local` (the box's own user, admin), as the CLI on the
box is; a request that sends a token is still held to that token's role. Wrong tokens are
throttled per client address (`throttle.py`). The principal becomes `request.user` and the
actor of everything the request writes (`appliance/access/actor.py`). A request that names
another home (`X-Appliance-Home-Id`) is refused; one naming none is served."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from appliance.access.actor import set_actor
from appliance.access.authenticate import Authenticator
from appliance.access.roles import LOCAL, Principal, Role
from appliance.access.rules import RULE
from appliance.errors import ApplianceError, InvalidInput
from appliance.server.ratelimit import RateLimit
from appliance.server.record import ACTOR_HEADER, HOME_HEADER, INSTANCE_HEADER, ROLE_HEADER
from appliance.server.throttle import AuthThrottle
from appliance.settings import Settings

WORKSPACE_KEY = "appliance.workspace"
"""Where `check_workspace` notes a body's workspace for the audit (`appliance/server/audit.py`)."""
NO_TOKEN = (
    "this server needs a token: send 'Authorization: Bearer <token>' (an admin issues one "
    "with `appliance user add NAME --role ROLE`)"
)


def auth_required(settings: Settings) -> bool:
    return bool(settings.token) or settings.require_auth or not is_loopback(settings.host)


class Access:
    """What the guard needs, built once per app (kept in `app.state.access`)."""

    def __init__(
        self,
        settings: Settings,
        authenticator: Authenticator,
        workspace_of: dict[str, Callable[[str], str]],
    ):
        self.required = auth_required(settings)
        self.authenticator = authenticator
        self.workspace_of = workspace_of
        self.throttle = AuthThrottle()
        self.predict_limit = RateLimit(settings.predict_rate_limit)
        self.limit_predict = settings.predict_rate_limit > 0

    def principal(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
        """Who sends the request; None for no token where none is required. A wrong token is
        401 (and counts towards its address's throttle)."""
        header = connection.headers.get("authorization")
        if header is None:
            if self.required:
                raise NotAuthorizedException(NO_TOKEN)
            return None
        client = connection.client.host if connection.client else ""
        self.throttle.check(client)
        scheme, _, given = header.partition(" ")
        found = self.authenticator.principal(given) if scheme.lower() == "bearer" else None
        if found is None:
            self.throttle.failed(client)
            raise NotAuthorizedException(
                "the token is not known (mistyped, or revoked): send 'Authorization: Bearer "
                "<token>' with a token from `appliance user add`"
            )
        self.throttle.succeeded(client)
        if found is LOCAL and (on_behalf := connection.headers.get(ACTOR_HEADER)):
            return _on_behalf(on_behalf, connection.headers.get(ROLE_HEADER, ""))
        return found


def _on_behalf(name: str, role: str) -> Principal:
    """The box acting for one of its users (the TUI `appliance web` runs for a browser): only
    the local key may say so, and the role it names is the most the request gets."""
    try:
        capped = Role[role.strip()]
    except KeyError:
        capped = Role.viewer
    return Principal(name.strip()[:64] or LOCAL.name, capped)


async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    # async on purpose: Litestar runs a sync guard on its thread pool, a hop per request.
    rule = handler.opt.get(RULE)
    if rule is None:  # public: the health probes (create_app refuses a route with no rule)
        return
    access: Access = connection.app.state.access
    given = access.principal(connection)
    principal = given or LOCAL
    connection.scope["user"] = principal  # before the checks: the audit names who was refused
    set_actor(principal.name)
    principal.require(rule)
    if principal.workspace is not None:
        await _check_workspace(connection, handler, principal, access)
    if given is not None and access.limit_predict and handler.opt.get("predict"):
        access.predict_limit.take(given.name)


async def _check_workspace(
    connection: ASGIConnection[Any, Any, Any, Any],
    handler: BaseRouteHandler,
    principal: Principal,
    access: Access,
) -> None:
    if handler.opt.get("every_workspace"):
        principal.require_every_workspace()
    params = connection.path_params
    if "workspace" in params:
        principal.require_workspace(params["workspace"])
    if scope := handler.opt.get("scope"):
        kind, param = scope
        if kind == "endpoint":  # from memory
            workspace = access.workspace_of[kind](params[param])
        else:
            workspace = await anyio.to_thread.run_sync(access.workspace_of[kind], params[param])
        principal.require_workspace(workspace)


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The principal the guard found (`local` where none is required and none was sent)."""
    found = connection.scope.get("user")
    return found if isinstance(found, Principal) else LOCAL


def check_workspace(connection: ASGIConnection[Any, Any, Any, Any], workspace: str) -> None:
    """For a route that reads its workspace from the body: the principal may use it (else
    403), and the audit row names it."""
    principal_of(connection).require_workspace(workspace)
    connection.scope[WORKSPACE_KEY] = workspace  # type: ignore[literal-required]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen_address(settings: Settings, has_users: bool = False) -> None:
    """Refuse to listen beyond loopback when no token could be accepted."""
    if not is_loopback(settings.host) and not settings.token and not has_users:
        raise InvalidInput(
            f"listening on {settings.host} (beyond loopback) needs a token: add a user "
            "(`appliance user add NAME --role admin`), or set the token_file setting or "
            "APPLIANCE_TOKEN"
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
