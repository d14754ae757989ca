"""How figures read on screen: short, aligned text for numbers that may be missing (a dash),
so every screen formats latency, rates and times the same way."""

from __future__ import annotations

from datetime import UTC, datetime

DASH = "–"


def number(value: float | None, digits: int = 0) -> str:
    """`value` with thousands separators and `digits` decimals; a dash when unknown."""
    if value is None:
        return DASH
    return f"{value:,.{digits}f}"


def ms(value: float | None) -> str:
    """A duration in milliseconds, one decimal below 10 ms."""
    if value is None:
        return DASH
    return f"{value:.1f} ms" if value < 10 else f"{value:,.0f} ms"


def percent(value: float | None) -> str:
    """A share in 0..1 as a percentage."""
    return DASH if value is None else f"{value * 100:.1f}%"


def hours(value: float | None) -> str:
    """A duration in hours, in minutes when under one hour."""
    if value is None:
        return DASH
    return f"{value * 60:.0f} min" if value < 1 else f"{value:.1f} h"


def moment(text: str | None, now: datetime | None = None) -> str:
    """A registry timestamp as local 'HH:MM' today, else 'MM-DD HH:MM'."""
    if not text:
        return DASH
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    local = parsed.astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    return local.strftime("%H:%M" if local.date() == today else "%m-%d %H:%M")
