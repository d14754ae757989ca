"""Validation of user-chosen names (workspaces, datasets, models, endpoints, aliases).

Names become folder names and URL segments, so they are kept to a small safe alphabet: no path
separators, no `..`, no leading dot or dash, and a bounded length.
"""

from __future__ import annotations

import re

from appliance.errors import InvalidInput

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
DEFAULT_MAX_LENGTH = 64


def validate_name(value: str, kind: str = "name", max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """Return `value` if it is a safe name, else raise InvalidInput saying what to change."""
    if not value:
        raise InvalidInput(f"{kind} must not be empty")
    if len(value) > max_length:
        raise InvalidInput(
            f"{kind} '{value[:20]}…' is {len(value)} characters; at most {max_length}"
        )
    if "/" in value or "\\" in value or ".." in value:
        raise InvalidInput(f"{kind} '{value}' must not contain '/', '\\' or '..'")
    if not _NAME.fullmatch(value):
        raise InvalidInput(
            f"{kind} '{value}' may use only letters, digits, '.', '_' and '-', "
            "and must start with a letter or digit"
        )
    return value


def split_ref(value: str) -> tuple[str, str | None]:
    """Split `NAME@REF` into its parts; REF is None when there is no `@`."""
    name, sep, ref = value.partition("@")
    if sep and not ref:
        raise InvalidInput(f"'{value}' ends with '@'; give a version or alias after it")
    return name, (ref if sep else None)
