"""A real server for tests: the Litestar app under uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from appliance.server.background import free_port, serving_in_background
from appliance.services import Services

__all__ = ["free_port", "running_server", "wait_ready", "wait_until_up"]


@contextmanager
def running_server(services: Services, restore: bool = True) -> Iterator[httpx.Client]:
    with serving_in_background(services, restore=restore) as base, httpx.Client(
        base_url=base, timeout=60
    ) as client:  # fmt: skip
        yield client


def wait_ready(client: httpx.Client, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while client.get("/v2/health/ready").status_code != 200:
        if time.time() > deadline:
            raise RuntimeError("the server never became ready")
        time.sleep(0.05)


def wait_until_up(
    process: subprocess.Popen[Any], url: str, timeout: float = 60, what: str = "the server"
) -> None:
    """Until `url` answers 200 (a server started as `process`); fails when the process exits
    first or `timeout` passes."""
    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.time() < deadline and process.poll() is None, f"{what} did not start"
        time.sleep(0.1)
