"""Users and their tokens. `add` makes a token and shows it once: only a salted SHA-256 of it
is stored. A token is `apl_<key>_<secret>`: the key finds the user's row, the secret is
compared in constant time with the stored hash. The secret is 32 random bytes, so a slow
password hash would buy nothing against guessing and would cost every request; the salt
keeps two stored hashes of one secret apart. A revoked token stops working within
`CACHE_S` seconds on a running server (it keeps recent lookups that long)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import Any

import sqlite_utils

from appliance.access.actor import current_actor
from appliance.access.roles import Principal, Role
from appliance.errors import Conflict, NotFound
from appliance.names import validate_name
from appliance.registry import Registry, Rows, utcnow

PREFIX = "apl_"
CACHE_S = 1.0


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


class Users:
    def __init__(self, registry: Registry):
        self._registry = registry
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def add(
        self, name: str, role: Role, workspace: str | None = None
    ) -> tuple[dict[str, Any], str]:
        """The new user's row and its token (shown once; only its hash is kept)."""
        validate_name(name, "user name", 64)
        key, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)

        def insert(db: sqlite_utils.Database) -> dict[str, Any]:
            if db.execute(
                "SELECT 1 FROM users WHERE name = ? AND revoked_at IS NULL", (name,)
            ).fetchone():
                raise Conflict(f"user '{name}' already exists (revoke it first to reissue)")
            workspace_id = None
            if workspace is not None:
                found = db.execute("SELECT id FROM workspaces WHERE name = ?", (workspace,))
                row = found.fetchone()
                if row is None:
                    raise NotFound(f"no workspace '{workspace}' (see `appliance workspace list`)")
                workspace_id = row[0]
            record = {
                "key": key, "name": name, "role": role.name, "workspace_id": workspace_id,
                "salt": salt, "token_hash": _digest(salt, secret),
                "created_at": utcnow(), "created_by": current_actor(),
            }  # fmt: skip
            db.table("users").insert(record)
            return record

        row = self._registry.write(insert)
        return self._public(row | {"workspace": workspace}), f"{PREFIX}{key}_{secret}"

    def list(self, include_revoked: bool = False) -> Rows:
        where = "" if include_revoked else "WHERE u.revoked_at IS NULL"
        rows = self._registry.query(
            "SELECT u.*, w.name AS workspace FROM users u"
            f" LEFT JOIN workspaces w ON w.id = u.workspace_id {where} ORDER BY u.created_at"
        )
        return [self._public(row) for row in rows]

    def revoke(self, name: str) -> dict[str, Any]:
        def revoke(db: sqlite_utils.Database) -> dict[str, Any]:
            found = db.execute(
                "SELECT key FROM users WHERE name = ? AND revoked_at IS NULL", (name,)
            ).fetchone()
            if found is None:
                raise NotFound(f"no user '{name}' (see `appliance user list`)")
            db.execute("UPDATE users SET revoked_at = ? WHERE key = ?", (utcnow(), found[0]))
            return {"name": name, "key": found[0]}

        done = self._registry.write(revoke)
        with self._lock:
            self._cache.pop(done["key"], None)
        return done

    def authenticate(self, token: str) -> Principal | None:
        """The user `token` belongs to, or None (unknown, wrong or revoked)."""
        key, _, secret = token.removeprefix(PREFIX).partition("_")
        if not token.startswith(PREFIX) or not key or not secret:
            return None
        row = self._row(key)
        if row is None or not hmac.compare_digest(_digest(row["salt"], secret), row["token_hash"]):
            return None
        return Principal(row["name"], Role[row["role"]], row["workspace"])

    def _row(self, key: str) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        rows = self._registry.query(
            "SELECT u.name, u.role, u.salt, u.token_hash, w.name AS workspace FROM users u"
            " LEFT JOIN workspaces w ON w.id = u.workspace_id"
            " WHERE u.key = ? AND u.revoked_at IS NULL",
            (key,),
        )
        row = rows[0] if rows else None
        with self._lock:
            if len(self._cache) > 10_000:  # unknown keys are remembered too: bound them
                self._cache.clear()
            self._cache[key] = (now, row)
        return row

    @staticmethod
    def _public(row: dict[str, Any]) -> dict[str, Any]:
        """A row without its secrets (salt and hash never leave this module)."""
        return {
            k: row.get(k)
            for k in ("name", "role", "workspace", "created_at", "created_by", "revoked_at")
        }
