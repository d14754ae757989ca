"""Tokens to principals. Three kinds of token are known:

- the server's single token (`token` / `token_file` / APPLIANCE_TOKEN): the `admin` principal;
- the home's local key (`local_key`, a file only the home's owner can read): `local`, the CLI
  and the TUI on the box, which send it without being told;
- a user's token (`appliance user add`): that user, with its role and workspace."""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from pathlib import Path

from appliance.access.roles import LOCAL, Principal, Role
from appliance.access.users import Users

LOCAL_KEY_FILE = "local.key"
ADMIN = Principal("admin", Role.admin)


def local_key(home: Path) -> str:
    """The home's local key, made on first use, readable by the home's owner only."""
    path = home / LOCAL_KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        if known := path.read_text().strip():
            return known
    home.mkdir(parents=True, exist_ok=True)
    candidate = home / f".{LOCAL_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"apl_local_{secrets.token_urlsafe(32)}\n")
    try:
        os.link(candidate, path)  # two makers at once agree: the first link wins
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return path.read_text().strip()


def read_local_key(home: Path) -> str | None:
    """The local key when this process may read it (the CLI of the home's owner), else None."""
    try:
        return (home / LOCAL_KEY_FILE).read_text().strip() or None
    except OSError:
        return None


class Authenticator:
    def __init__(self, users: Users, admin_token: str, local: str):
        self._users = users
        self._admin = admin_token.encode()
        self._local = local.encode()

    def principal(self, token: str) -> Principal | None:
        """Who `token` is, or None when it is no known token."""
        given = token.strip().encode()
        if self._admin and hmac.compare_digest(given, self._admin):
            return ADMIN
        if hmac.compare_digest(given, self._local):
            return LOCAL
        return self._users.authenticate(token.strip())
