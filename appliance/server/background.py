"""The HTTP server on a background thread of this process (`appliance up`, the demo, tests):
uvicorn with the real app, recorded in its home while it runs, started and stopped around a
block."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from appliance.server.app import create_app
from appliance.server.listen import HomeServer
from appliance.server.lock import HomeLock
from appliance.services import Services

START_SECONDS = 30


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving_in_background(
    services: Services, port: int | None = None, restore: bool = True, host: str = "127.0.0.1"
) -> Iterator[str]:
    """Run the server for the duration of the block; yields its base URL. Without `port`, the
    system picks a free one."""
    lock = HomeLock(services.settings.home)  # before the app restores or schedules anything
    try:
        app = create_app(services, restore=restore)
    except BaseException:
        lock.release()
        raise
    server = HomeServer(
        app, services.settings.home, lock, host=host, port=port or 0,
        log_level="warning", lifespan="on", timeout_graceful_shutdown=30,
    )  # fmt: skip
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    thread.start()
    deadline = time.time() + START_SECONDS
    while not server.url:  # set once it listens and its home records it
        if time.time() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the HTTP server did not start on {host} port {port or 'any'}")
        time.sleep(0.02)
    try:
        yield server.url
    finally:
        server.should_exit = True
        thread.join(START_SECONDS)
