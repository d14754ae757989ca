"""uvicorn for one home: once it listens, it records its address in the home (`server.json`, see
`appliance/server/record.py`) and removes the record when it stops, so the home's clients find
it whatever port it took. Used by `appliance serve` and by `serving_in_background` (`up`, the
demo, tests). Recorded here rather than in the app's lifespan: the lifespan starts before the
socket is bound and never learns the port (`--port 0` picks one)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar

from appliance.server.lock import HomeLock
from appliance.server.protocol import guarded_protocol
from appliance.server.record import ServerRecord, listen_url, remove_record, write_record


class HomeServer(uvicorn.Server):
    """`lock` is the home's server lock, taken by the caller before it built the app; the
    server releases it when `run` returns."""

    def __init__(self, app: Litestar, home: Path, lock: HomeLock, **config: Any):
        config.setdefault("http", guarded_protocol(app.state.settings))
        super().__init__(uvicorn.Config(app, **config))
        self.home = home
        self.lock = lock
        self.instance: str = app.state.instance
        self.home_id: str = app.state.home_id
        self.url = ""
        """The base URL clients use; set once listening and recorded."""

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            super().run(sockets)
        finally:
            self.lock.release()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        port = self.config.port
        if port == 0:
            port = self.servers[0].sockets[0].getsockname()[1]
        url = listen_url("https" if self.config.ssl else "http", self.config.host, port)
        record = ServerRecord(
            url=url,
            instance=self.instance,
            home_id=self.home_id,
            pid=os.getpid(),
            hostname=socket.gethostname(),
        )
        write_record(self.home, record)
        self.url = url

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Unfindable first: a CLI starting now works on the registry instead of a closing server.
        remove_record(self.home, self.instance)
        await super().shutdown(sockets)
