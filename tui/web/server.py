"""textual-serve's server with the gate in front (`login.py`): each websocket a logged-in browser
opens starts one TUI child (`child.py`) that runs as that browser's principal, at most
`MAX_TERMINALS` at once, closed when its session expires. Its page is textual-serve's own
(`templates/app_index.html`), with every asset served from the textual-serve package."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import textual_serve
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from appliance.access.authenticate import Authenticator, local_key
from appliance.access.roles import Principal
from appliance.services import Services
from tui.web.child import child_environment
from tui.web.login import PRINCIPAL, SESSION, Gate, same_origin
from tui.web.sessions import Sessions

MAX_TERMINALS = 16
"""TUI processes at once, all browsers together (each is a Python process of ~100 MB)."""
CHILD = f"{shlex.quote(sys.executable)} -m tui.web.child"
log = logging.getLogger("appliance.web")


class Terminal(AppService):
    """One TUI child, its environment saying who it runs as."""

    def __init__(self, principal: Principal, home: Path, **options: Any):
        super().__init__(CHILD, **options)
        self.principal, self.home = principal, home

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        base = super()._build_environment(width, height)
        return child_environment(base, self.principal, str(self.home))


class WebServer(Server):
    def __init__(self, services: Services, host: str, port: int):
        super().__init__(
            CHILD, host=host, port=port, title="appliance",
            statics_path=Path(textual_serve.__file__).with_name("static"),
            templates_path=Path(__file__).with_name("templates"),
        )  # fmt: skip
        settings = services.settings
        self.home = settings.home
        self.sessions = Sessions(settings.web_session_minutes * 60)
        authenticator = Authenticator(services.users, settings.token, local_key(settings.home))
        self.gate = Gate(services, authenticator, self.sessions)
        self.terminals: set[web.WebSocketResponse] = set()
        self.url = ""
        """The address browsers open; set once listening."""

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        self.gate.install(app)
        return app

    def run(self, on_listening: Any = None) -> None:
        """Serve until SIGINT or SIGTERM; `on_listening(url)` once the socket is bound."""
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        asyncio.run(self._serve(on_listening))

    async def _serve(self, on_listening: Any) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = web.AppRunner(await self._make_app(), access_log=None, shutdown_timeout=5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            port = runner.addresses[0][1]
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.url = f"http://{host}:{port}"
            if on_listening is not None:
                on_listening(self.url)
            await stop.wait()
        finally:
            await runner.cleanup()

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints a banner here; the command prints its one line instead."""

    async def on_shutdown(self, app: web.Application) -> None:
        for websocket in list(self.terminals):  # each TUI child is told to quit
            await websocket.close()

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        # The websocket's address from the Host the browser used (the gate checked it), not
        # from the listening address: 0.0.0.0 is no address a browser can open.
        scheme = "wss" if request.secure else "ws"
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{scheme}://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        principal: Principal = request[PRINCIPAL]
        session: str = request[SESSION]
        if not same_origin(request):
            raise web.HTTPForbidden(text="a terminal opened from another web origin is refused")
        if not await self.gate.still_allowed(principal):
            self.sessions.close(session)
            raise web.HTTPUnauthorized(text=f"'{principal.name}' is revoked: log in again")
        if len(self.terminals) >= MAX_TERMINALS:
            raise web.HTTPServiceUnavailable(
                text=f"{MAX_TERMINALS} terminals are open already: close one and reload"
            )
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        await websocket.prepare(request)
        self.terminals.add(websocket)
        expiry = asyncio.create_task(_close_after(websocket, self.sessions.seconds_left(session)))
        terminal = Terminal(
            principal, self.home, write_bytes=websocket.send_bytes,
            write_str=websocket.send_str, close=websocket.close,
            download_manager=self.download_manager, debug=self.debug,
        )  # fmt: skip
        log.info("web terminal for %s (%s)", principal.name, principal.role.name)
        try:
            await terminal.start(width, height)
            await self._process_messages(websocket, terminal)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception:
            log.exception("web terminal for %s failed", principal.name)
        finally:
            expiry.cancel()
            self.terminals.discard(websocket)
            await terminal.stop()
        return websocket


async def _close_after(websocket: web.WebSocketResponse, seconds: float) -> None:
    await asyncio.sleep(seconds)
    with contextlib.suppress(Exception):
        await websocket.close()
