"""Refusing what a web page can make a browser send. Any page open in a browser on the box (or
on a machine that reaches it) can POST to the server without a preflight (`text/plain`, a form),
and a page served from a domain the attacker points at 127.0.0.1 (DNS rebinding) can read the
answers too. So, in every mode, token or not:

- **Host**: the `Host` header must name this server: a loopback name (`localhost`, `127.0.0.1`,
  `::1`) or one of `allowed_hosts`; a server listening beyond loopback with `allowed_hosts`
  empty accepts any (its token guards the writes). 400 otherwise.
- **Origin**: a write (any method but GET, HEAD, OPTIONS) that carries an `Origin` other than the
  server's own (`Host`) or one of `allowed_origins`, or that the browser marks `Sec-Fetch-Site:
  cross-site`, is 403.
- **Content types** (`declared_types`): a write with a body must send one of the content types
  its route declares (`appliance/access/rules.py`; JSON unless it says otherwise), so most
  writes need `application/json`, which a page cannot send cross-site without a preflight the
  server never grants; uploads declare a tar or multipart; predict routes check the types
  their endpoint's task reads. A write without a body (pause, run) has no type to check;
  browsers send an Origin with every POST, which the Origin rule checks.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from appliance.access.rules import JSON, accepts
from appliance.errors import ApplianceError, InvalidInput, UnsupportedMedia
from appliance.server.auth import is_loopback
from appliance.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CrossSite(ApplianceError):
    http_status = 403


def names(setting: str) -> frozenset[str]:
    """A comma-separated setting as a set of lower-case names."""
    return frozenset(n.strip().lower() for n in setting.split(",") if n.strip())


def host_name(host: str) -> str:
    """'127.0.0.1:8765' → '127.0.0.1', '[::1]:8765' → '::1', 'Box.local' → 'box.local'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class CrossSiteCheck(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: Settings):
        configured = names(settings.allowed_hosts)
        self.any_host = not is_loopback(settings.host) and not configured
        self.hosts = configured | LOOPBACK_NAMES
        self.origins = names(settings.allowed_origins)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        headers = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in _READ}
        host = headers.get("host", "")
        if host and not self.any_host and host_name(host) not in self.hosts:
            raise InvalidInput(
                f"the Host header '{host}' does not name this server: it answers to "
                f"{', '.join(sorted(self.hosts))} (add a name to the allowed_hosts setting)"
            )
        if scope.get("method", "GET") not in READ_METHODS:
            origin = headers.get("origin")
            if origin is not None and not self._same_or_allowed(origin, host):
                raise CrossSite(
                    f"a write from the web origin '{origin}' is refused: only this server's "
                    "own pages may write (add the origin to the allowed_origins setting to "
                    "allow it)"
                )
            if origin is None and headers.get("sec-fetch-site") == "cross-site":
                raise CrossSite("a cross-site write from a web page is refused")
        await next_app(scope, receive, send)

    def _same_or_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().lower()
        if origin in self.origins:
            return True
        parts = urlsplit(origin)
        return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host.lower()


_READ = frozenset({b"host", b"origin", b"sec-fetch-site"})


async def declared_types(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A write with a body sends one of its route's declared content types (see the module)."""
    method = connection.scope.get("method", "GET")
    if method in READ_METHODS:
        return
    headers = connection.headers
    if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
        return  # no body (`curl -X POST …/pause`): nothing to read, and the Origin check holds
    declared: tuple[str, ...] | None = handler.opt.get("content_types", JSON)
    if declared is None:  # a predict route: its task checks (appliance/access/rules.py)
        return
    media = headers.get("content-type", "").partition(";")[0].strip().lower()
    if not accepts(declared, media):
        wanted = (
            "JSON with 'content-type: application/json'"
            if declared == JSON
            else f"one of {', '.join(declared)} (said in the content-type header)"
        )
        raise UnsupportedMedia(f"content type '{media or 'none'}' is not accepted: send {wanted}")
