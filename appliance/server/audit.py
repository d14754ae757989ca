"""Records every write request the server answers (any method but GET, HEAD, OPTIONS), refused
ones included, with who sent it (`request.user`, set by the access guard), into the audit
table (`appliance/access/audit.py`). Predict routes are left out (`audit=False`): predictions
are captured on their own, at a rate the audit table should not take. The row is queued to the
registry writer after the answer is sent, never awaited on the event loop."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from appliance.access.audit import record_request
from appliance.access.roles import Principal
from appliance.errors import ApplianceError
from appliance.registry import Registry
from appliance.server.auth import WORKSPACE_KEY
from appliance.server.crosssite import READ_METHODS

log = logging.getLogger("appliance.server")


class AuditTrail(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, registry: Registry, workspace_of: dict[str, Callable[[str], str]]):
        self.registry = registry
        self.workspace_of = workspace_of

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope.get("method", "GET") in READ_METHODS:
            await next_app(scope, receive, send)
            return
        status = 500

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await next_app(scope, receive, noted)
        finally:
            self._record(scope, status)

    def _record(self, scope: Scope, status: int) -> None:
        handler: Any = scope.get("route_handler")
        opt = getattr(handler, "opt", {}) or {}
        if opt.get("audit") is False:
            return
        user = scope.get("user")
        principal = user if isinstance(user, Principal) else None
        params: dict[str, Any] = scope.get("path_params") or {}
        noted = scope.get(WORKSPACE_KEY)  # our own key in the scope
        workspace = params.get("workspace") or (noted if isinstance(noted, str) else None)
        resolve = None
        if workspace is None and (kind := opt.get("scope")):
            resolve = (self.workspace_of.get(kind[0]), params.get(kind[1]))
        client = scope.get("client")
        row: dict[str, Any] = {
            "actor": principal.name if principal else "(no valid token)",
            "role": principal.role.name if principal else "",
            "method": scope.get("method", ""), "path": scope.get("path", ""), "status": status,
            "client": client[0] if client else "",
        }  # fmt: skip

        def job(db: Any) -> None:
            found = workspace
            if found is None and resolve is not None and resolve[0] and resolve[1]:
                try:
                    found = resolve[0](resolve[1])
                except ApplianceError:  # an unknown thing: recorded without a workspace
                    found = None
            record_request(db, workspace=found, **row)

        try:
            future: Future[None] = self.registry.submit(job)
        except RuntimeError:  # the writer is closed: the server is stopping
            return
        future.add_done_callback(_log_failure)


def _log_failure(future: Future[None]) -> None:
    if (exc := future.exception()) is not None:
        log.warning("could not record an audit row: %s", exc)
