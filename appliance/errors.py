"""Errors a user can fix. Their message is shown as-is: one line that says what to do.

The CLI prints them as `error: <message>` with a non-zero exit; the HTTP layer maps them to 4xx.
Anything that is not an `ApplianceError` is a bug and is reported as such.
"""


class ApplianceError(Exception):
    """Base for errors caused by input or state the user controls."""

    http_status = 400


class InvalidInput(ApplianceError):
    """The request itself is malformed: a bad name, a broken file, a wrong option."""

    http_status = 400


class NotFound(ApplianceError):
    """A named thing (workspace, dataset, version, model, run) does not exist."""

    http_status = 404


class Conflict(ApplianceError):
    """The request clashes with existing state: a name already taken, a non-empty folder."""

    http_status = 409


class UnsupportedMedia(ApplianceError):
    """The bytes are not in a format we accept (not an image, a wrong content type)."""

    http_status = 415


class Unprocessable(ApplianceError):
    """The format is right but the content is broken: a truncated or corrupt image."""

    http_status = 422


class TooLarge(ApplianceError):
    """A body or an image exceeds a configured limit."""

    http_status = 413


class Unavailable(ApplianceError):
    """Something the request needs does not answer: a Ray cluster at the address given."""

    http_status = 503
