"""The gate in front of textual-serve's routes: a login page that takes a token, and a middleware
that lets a request through only with a live session cookie (the page, its static files and
downloads redirect to the login page; the terminal's websocket is 401).

- The token is checked by the `Authenticator` (the admin token, the home's local key, or a
  user's token of any role: viewer and above). A user limited to one workspace is refused: the
  TUI shows every workspace. Wrong tokens are throttled per client address (`AuthThrottle`).
- The cookie holds a random session id, HttpOnly and SameSite=Strict, never the token.
- The Host header must name this server (loopback names or `allowed_hosts`, as the API
  server's), and a login or a websocket from another web origin is refused (403): SameSite
  does not tell one port of 127.0.0.1 from another, the Origin header does.
- Every answer forbids framing and third-party content (Content-Security-Policy)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from appliance.access.authenticate import ADMIN, Authenticator
from appliance.access.roles import LOCAL, Principal, Role
from appliance.server.auth import is_loopback
from appliance.server.crosssite import LOOPBACK_NAMES, host_name, names
from appliance.server.throttle import AuthThrottle, TooManyAttempts
from appliance.services import Services
from tui.web.sessions import Sessions

COOKIE = "appliance_session"
LOGIN = "/login"
PRINCIPAL = "principal"
SESSION = "session"
log = logging.getLogger("appliance.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True
)


class Gate:
    def __init__(self, services: Services, authenticator: Authenticator, sessions: Sessions):
        settings = services.settings
        self.users = services.users
        self.authenticator = authenticator
        self.sessions = sessions
        self.throttle = AuthThrottle()
        configured = names(settings.allowed_hosts)
        self.any_host = not is_loopback(settings.host) and not configured
        self.hosts = configured | LOOPBACK_NAMES

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        app.router.add_get(LOGIN, self.login_page)
        app.router.add_post(LOGIN, self.login)
        app.on_response_prepare.append(_security_headers)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.any_host and host_name(request.host) not in self.hosts:
            raise web.HTTPBadRequest(
                text=f"the Host header '{request.host}' does not name this server: it answers "
                f"to {', '.join(sorted(self.hosts))} (add a name to the allowed_hosts setting)"
            )
        if request.path == LOGIN:
            return await handler(request)
        session = request.cookies.get(COOKIE)
        principal = self.sessions.principal(session)
        if principal is None or session is None:
            if request.path == "/ws":
                raise web.HTTPUnauthorized(text=f"log in first at {LOGIN}")
            raise web.HTTPSeeOther(LOGIN)
        request[PRINCIPAL], request[SESSION] = principal, session
        return await handler(request)

    async def login_page(self, request: web.Request) -> web.Response:
        return _page("", 200)

    async def login(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            return _page("this login came from another web page: open this page yourself", 403)
        client = request.remote or ""
        try:
            self.throttle.check(client)
        except TooManyAttempts as exc:
            answer = _page(str(exc), 429)
            answer.headers["Retry-After"] = str(exc.retry_after)
            return answer
        token = str((await request.post()).get("token", "")).strip()
        if not token:  # no guess: nothing to throttle
            return _page("enter a token", 401)
        principal = await asyncio.to_thread(self.authenticator.principal, token)
        if principal is None:
            self.throttle.failed(client)
            log.warning("web login refused from %s: unknown token", client)
            return _page("the token is not known (mistyped, or revoked)", 401)
        self.throttle.succeeded(client)
        if principal.workspace is not None or principal.role < Role.viewer:
            return _page(
                f"'{principal.name}' is limited to the workspace '{principal.workspace}', and "
                "the web UI shows every workspace: ask an admin for a token without that limit",
                403,
            )
        session = self.sessions.open(principal)
        log.info("web login: %s (%s) from %s", principal.name, principal.role.name, client)
        answer = web.HTTPSeeOther("/")
        answer.set_cookie(
            COOKIE, session, max_age=int(self.sessions.lifetime_s), path="/", httponly=True,
            samesite="Strict", secure=request.secure,
        )  # fmt: skip
        return answer

    async def still_allowed(self, principal: Principal) -> bool:
        """A user's login lasts only while the user does (a revoked user opens no terminal)."""
        if principal is ADMIN or principal is LOCAL:  # the very objects: not users
            return True
        rows = await asyncio.to_thread(self.users.list)
        return any(row["name"] == principal.name and row["role"] == principal.role.name
                   for row in rows)  # fmt: skip


def same_origin(request: web.Request) -> bool:
    """No Origin (not a browser's request), or this server's own."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme == request.scheme and parts.netloc.lower() == request.host.lower()


def _page(error: str, status: int) -> web.Response:
    html = _templates.get_template("login.html").render(error=error)
    return web.Response(text=html, status=status, content_type="text/html")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    scheme = "wss" if request.secure else "ws"
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
        f"'unsafe-inline'; img-src 'self' data:; connect-src 'self' {scheme}://{request.host}; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # no-referrer would make Chromium send `Origin: null` with the login form
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path in ("/", LOGIN):
        response.headers.setdefault("Cache-Control", "no-store")
