"""Tokens to principals. Three kinds of token are known:

- the server's single token (`token` / `token_file` / APPLIANCE_TOKEN): the `admin` principal;
- the home's local key (`local_key`, a file only the home's owner can read): `local`, the CLI
  and the TUI on the box, which send it without being told;
- a user's token (`appliance user add`): that user, with its role and workspace."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from appliance.access.roles import LOCAL, Principal, Role
from appliance.access.users import Users
from appliance.once import made_once

LOCAL_KEY_FILE = "local.key"
ADMIN = Principal("admin", Role.admin)


def local_key(home: Path) -> str:
    """The home's local key, made on first use, readable by the home's owner only."""
    return made_once(home / LOCAL_KEY_FILE, _new_local_key, mode=0o600)


def _new_local_key() -> str:
    return f"apl_local_{secrets.token_urlsafe(32)}"


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
