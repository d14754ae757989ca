"""A server's refusal as the error the same mistake raises locally: `{"error": msg}` with 404 is
NotFound, 409 Conflict, 400 InvalidInput, and so on, carrying the server's message; 401 and 403
say that the token does not allow it."""

from __future__ import annotations

import httpx

from appliance.access.roles import Forbidden
from appliance.errors import (
    ApplianceError,
    Conflict,
    InvalidInput,
    NotFound,
    TooLarge,
    Unprocessable,
    UnsupportedMedia,
)


class NotAllowed(ApplianceError):
    """The server wants a token this client did not send, or one it does not know."""

    http_status = 401


class Unreachable(ApplianceError):
    """No server answered: none runs for the home, or the address does not answer."""

    http_status = 503


class Refused(ApplianceError):
    """Any other refusal (a 429, a 507, a 5xx); `http_status` is the server's status."""


BY_STATUS: dict[int, type[ApplianceError]] = {
    400: InvalidInput,
    401: NotAllowed,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    415: UnsupportedMedia,
    422: Unprocessable,
}


def refusal(status: int, message: str) -> ApplianceError:
    """The error for a refusal with `status`, which its `http_status` keeps."""
    if status == 401:
        message = (
            f"{message} (pass token=... to appliance.connect, or set APPLIANCE_TOKEN, to a token "
            "the server knows)"
        )
    error = BY_STATUS.get(status, Refused)(message)
    error.http_status = status
    return error


def message_of(answer: httpx.Response) -> str:
    """The server's `error` text, or the status's reason when the body holds none."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return answer.reason_phrase or f"HTTP {answer.status_code}"
