"""The HTTP/1.1 connection limits uvicorn lacks, as its httptools protocol with four guards:

- a **header read timeout**: a request's head (request line and headers) must arrive within
  `http_header_timeout_s` of the connection opening or of the previous answer, or the connection
  gets 408 and is closed. uvicorn's keep-alive timer is cancelled by any byte received, so a
  client sending one header byte every few seconds held a connection (and a file handle) for
  ever: 290 of them at a 300-file limit left normal requests unserved;
- **header size and count caps** (`http_max_header_bytes`, `http_max_headers`): 431. httptools
  has none (100 MB of headers were accepted);
- a **connection cap** (`max_connections`): a connection beyond it is answered 503 with a
  `Retry-After` and closed at once, with one log line per interval saying how many were refused,
  instead of the process running out of file handles and failing everything.

Body limits are the app's (`max_body_bytes`, 413). Used through uvicorn's `http=` option."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from appliance.settings import Settings

log = logging.getLogger("appliance.server")

LOG_EVERY_S = 10.0
"""Refused connections are logged at most once per interval, with their count."""


def guarded_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's `http=`, with the limits of `settings`."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "header_timeout_s": float(settings.http_header_timeout_s),
            "max_header_bytes": settings.http_max_header_bytes,
            "max_headers": settings.http_max_headers,
            "max_connections": settings.max_connections,
            "refusals": _Refusals(),
        },
    )


class _Refusals:
    """Counts refused connections and logs them at most once per interval."""

    def __init__(self) -> None:
        self.unlogged = 0
        self.logged_at = 0.0

    def count(self, open_connections: int, limit: int) -> None:
        self.unlogged += 1
        now = time.monotonic()
        if now - self.logged_at >= LOG_EVERY_S:
            log.warning(
                "refused %d connection(s): %d open, the limit is %d (setting max_connections)",
                self.unlogged, open_connections, limit,
            )  # fmt: skip
            self.unlogged, self.logged_at = 0, now


class GuardedHttpProtocol(HttpToolsProtocol):
    header_timeout_s: ClassVar[float] = 10.0
    max_header_bytes: ClassVar[int] = 32 * 1024
    max_headers: ClassVar[int] = 100
    max_connections: ClassVar[int] = 512
    refusals: ClassVar[_Refusals] = _Refusals()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = self._head_lines = 0
        self._tail = b""
        self._answered = False
        self._request_read = False
        if len(self.connections) > self.max_connections:
            self.refusals.count(len(self.connections) - 1, self.max_connections)
            self._refuse(503, "the server has too many open connections; try again shortly")
            return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None and not self._head_within_limits(data):
            return
        super().data_received(data)

    def _head_within_limits(self, data: bytes) -> bool:
        """Count the head's bytes and lines in `data` (up to the blank line that ends it, which
        may straddle chunks) before the parser sees them; refuse with 431 when over a cap."""
        window = self._tail + data
        end = window.find(b"\r\n\r\n")
        in_head = len(data) if end < 0 else max(0, end + 4 - len(self._tail))
        self._tail = window[-3:]
        self._head_bytes += in_head
        self._head_lines += data.count(b"\n", 0, in_head)
        if self._head_bytes > self.max_header_bytes:
            self._refuse(431, f"the request head is over {self.max_header_bytes:,} bytes")
            return False
        if self._head_lines > self.max_headers + 2:  # the request line and the blank line
            self._refuse(431, f"the request has more than {self.max_headers} header lines")
            return False
        return True

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_begin(self) -> None:
        self._request_read = False
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._request_read = True
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete:
            self._next_head()  # answered before its body was all read (a 413, say)

    def on_response_complete(self) -> None:
        self._answered = True
        super().on_response_complete()
        if self._request_read:
            self._next_head()

    def _next_head(self) -> None:
        """The connection waits for its next request: both the last request and its answer are
        done, and no pipelined request is pending (its head has already arrived)."""
        if not self.pipeline and not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        self._cancel_head_timer()
        self._head_bytes = self._head_lines = 0
        self._tail = b""
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()  # type: ignore[union-attr]
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes == 0 and self._answered:
            self.transport.close()  # an idle keep-alive connection: close it quietly
            return
        self._refuse(408, f"the request head did not arrive within {self.header_timeout_s:g} s")

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with our usual `{"error": …}` body and close the connection."""
        self._cancel_head_timer()
        body = json.dumps({"error": message}).encode()
        reason = _REASONS[status]
        headers: list[Any] = [
            f"HTTP/1.1 {status} {reason}".encode(),
            b"content-type: application/json",
            f"content-length: {len(body)}".encode(),
            b"connection: close",
        ]
        if status == 503:
            headers.append(b"retry-after: 2")
        self.transport.write(b"\r\n".join(headers) + b"\r\n\r\n" + body)
        self.transport.close()


_REASONS = {
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
