"""The held-out split: decided per row name (an image's file name; a text row's id, else its
text) by a hash, so it is the same on every run and a row stays on its side when a dataset grows
(new rows never reshuffle old ones)."""

from __future__ import annotations

import hashlib
from typing import Any

from appliance.datasets.textrows import row_key

EVAL_FRACTION = 0.15


def is_held_out(file_name: str, fraction: float = EVAL_FRACTION) -> bool:
    point = int.from_bytes(hashlib.sha256(file_name.encode()).digest()[:8], "big") / 2**64
    return point < fraction


def split_rows(
    rows: list[dict[str, Any]], fraction: float = EVAL_FRACTION
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train rows, held-out rows)."""
    train: list[dict[str, Any]] = []
    held_out: list[dict[str, Any]] = []
    for row in rows:
        (held_out if is_held_out(row_key(row), fraction) else train).append(row)
    return train, held_out
