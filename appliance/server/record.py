"""Which server serves a home. A home has an id, made once and kept in the home (`home-id`); a
running server records where it listens in its home (`server.json`: address, pid, a fresh
instance id) from the moment it listens until it stops. Clients of a home find its server
there, never by guessing a port, and name their home on every request so that a server of
another home refuses them (`appliance/server/auth.py`). Light on purpose: the CLI imports it."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.once import made_once

HOME_ID_FILE = "home-id"
RECORD_FILE = "server.json"
HOME_HEADER = "x-appliance-home-id"
"""Sent by clients (the home they belong to) and by the server (the home it serves)."""
INSTANCE_HEADER = "x-appliance-instance-id"
"""Sent by the server on every answer: the instance id its record names."""
ACTOR_HEADER, ROLE_HEADER = "x-appliance-actor", "x-appliance-role"
"""Sent with the home's local key by a process acting for one of the box's users (the TUI
`appliance web` runs for a browser): the server records that user and caps the role."""


def home_id(home: Path) -> str:
    """The id of `home`, made on first use (`appliance/once.py`: two makers at once agree)."""
    return made_once(home / HOME_ID_FILE, lambda: secrets.token_hex(8))


def new_instance() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class ServerRecord:
    url: str
    """Where clients on this machine reach it: a wildcard listen address becomes loopback."""
    instance: str
    home_id: str
    pid: int
    hostname: str
    """The machine the pid belongs to (a home on a shared disk may be served elsewhere)."""


def listen_url(scheme: str, host: str, port: int) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def write_record(home: Path, record: ServerRecord) -> None:
    """Atomically: a reader sees the previous record or this one, never half of one."""
    path = home / RECORD_FILE
    partial = home / f".{RECORD_FILE}.{record.instance}"
    partial.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(partial, path)


def read_record(home: Path) -> ServerRecord | None:
    """The recorded server of `home`, or None: no record, an unreadable one, or one left by a
    process of this machine that is gone (killed, so it could not remove it). A live pid is
    not proof (pids are reused): clients also check that the address answers with the
    recorded instance id."""
    try:
        record = ServerRecord(**json.loads((home / RECORD_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if record.hostname == socket.gethostname() and not _alive(record.pid):
        return None
    return record


def remove_record(home: Path, instance: str) -> None:
    """Remove the record if it is still this instance's (a later server may have replaced it)."""
    path = home / RECORD_FILE
    try:
        if json.loads(path.read_text()).get("instance") == instance:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there: the HTTP check decides
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True
