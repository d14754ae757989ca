"""A small file of a home made once, on first use (its id, its local key): two processes making
it at once agree, since each writes its own candidate and only the first hard link to the
final name wins. Light on purpose: the CLI's start-up imports it."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def made_once(path: Path, make: Callable[[], str], mode: int = 0o644) -> str:
    """The stripped text of `path`, written first from `make()` (with `mode`) if missing."""
    with contextlib.suppress(FileNotFoundError):
        if known := path.read_text().strip():
            return known
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as out:
        out.write(make() + "\n")
    try:
        os.link(candidate, path)
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return path.read_text().strip()
