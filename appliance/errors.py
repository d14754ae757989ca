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
