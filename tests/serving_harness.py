"""A real server for tests: the Litestar app under uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from appliance.server.app import create_app
from appliance.services import Services


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(services: Services, restore: bool = True) -> Iterator[httpx.Client]:
    port = free_port()
    config = uvicorn.Config(
        create_app(services, restore=restore), host="127.0.0.1", port=port, log_level="warning",
        lifespan="on",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(20)


def wait_ready(client: httpx.Client, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while client.get("/v2/health/ready").status_code != 200:
        if time.time() > deadline:
            raise RuntimeError("the server never became ready")
        time.sleep(0.05)
