"""The connection limits of the real server over raw sockets: a head that arrives too slowly is
408, one too big or with too many headers 431, and a connection over the cap 503, each as our
JSON error and a closed connection, while normal requests keep being served."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from appliance.server.background import serving_in_background
from appliance.services import Services


@pytest.fixture
def server(isolated_home: Path) -> Iterator[tuple[str, int]]:
    limits = {"http_header_timeout_s": 0.5, "max_connections": 6, "http_max_header_bytes": 4096,
              "http_max_headers": 20}  # fmt: skip
    with Services.open(home=isolated_home, **limits) as services, serving_in_background(
        services, restore=False
    ) as base:  # fmt: skip
        parts = urlsplit(base)
        yield parts.hostname or "127.0.0.1", parts.port or 80


def connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=10)


def answer(sock: socket.socket) -> tuple[int, dict[str, str], str]:
    """Status, headers and body of the one answer before the server closes the socket."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body.decode()


def live(address: tuple[str, int]) -> int:
    host, port = address
    return httpx.get(f"http://{host}:{port}/v2/health/live", timeout=10).status_code


def test_a_slow_head_gets_408_and_normal_requests_are_served_meanwhile(
    server: tuple[str, int],
) -> None:
    slow = [connect(server) for _ in range(4)]
    for sock in slow:  # slowloris: a byte of the head now and then, never its end
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    assert live(server) == 200
    for sock in slow:
        sock.sendall(b"X-A: 1\r\n")
        status, headers, body = answer(sock)
        assert status == 408 and headers["connection"] == "close"
        assert json.loads(body) == {"error": "the request head did not arrive within 0.5 s"}
    assert time.monotonic() - started < 5
    assert live(server) == 200


def test_a_head_too_big_or_with_too_many_headers_is_431(server: tuple[str, int]) -> None:
    big = connect(server)
    big.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000)
    status, _, body = answer(big)
    assert status == 431 and "over 4,096 bytes" in json.loads(body)["error"]

    many = connect(server)
    many.sendall(b"GET /v2/health/live HTTP/1.1\r\n" + b"X-H: 1\r\n" * 30 + b"\r\n")
    status, _, body = answer(many)
    assert status == 431 and "more than 20 header lines" in json.loads(body)["error"]

    # A body in the same packet as the head is not counted as head.
    host, port = server
    posted = httpx.post(f"http://{host}:{port}/v2/health/live", content=b"b" * 50_000)
    assert posted.status_code == 405


def test_a_connection_over_the_cap_is_503_and_the_cap_frees_as_connections_close(
    server: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    held = [connect(server) for _ in range(6)]
    for sock in held:  # keep them open (and counted) without letting them time out yet
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    extra = connect(server)
    status, headers, body = answer(extra)
    assert status == 503 and headers["retry-after"] == "2"
    assert "too many open connections" in json.loads(body)["error"]
    assert any("refused 1 connection(s)" in r.getMessage() for r in caplog.records)
    for sock in held:
        sock.close()
    time.sleep(0.2)
    assert live(server) == 200
