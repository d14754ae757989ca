"""Live keyword adherence: of the keywords sellers gave with their photos, how many the answers
have. Live traffic has no reference description to say where each keyword belongs, so a keyword
counts as honoured when the description has it as whole words (`tasks.keywords.honoured`
without a reference); feedback that names ignored keywords is the users' own count beside it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from appliance.tasks.keywords import adherence, parse_keywords


def keyword_adherence(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Over a window's captured rows: the answered requests that gave keywords, the keywords
    they gave and honoured, the share honoured (None without keywords), and the feedback rows
    on the window's predictions that named an ignored keyword."""
    given = [r for r in rows if r["error"] is None and parse_keywords(r.get("keywords"))]
    kept = adherence([r.get("description") or "" for r in given], [r["keywords"] for r in given])
    share = kept.share
    return {
        "requests": len(given),
        "given": kept.given,
        "honoured": kept.honoured,
        "adherence": round(share, 4) if share is not None else None,
        "ignored_feedback": sum(int(r.get("ignored_feedback") or 0) for r in rows),
    }
