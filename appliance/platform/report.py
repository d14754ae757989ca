"""The platform report: adoption, user happiness, capabilities coverage and cost per user across
every workspace, for a window. A plain JSON-able dict, read by the CLI, the HTTP route, the TUI
and the maturity report (which reads `happiness["trend"]`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from appliance.errors import InvalidInput
from appliance.platform.adoption import adoption
from appliance.platform.cost import cost
from appliance.platform.coverage import coverage
from appliance.platform.feedback import PlatformFeedback, iso
from appliance.services import Services

DEFAULT_WINDOW_S = 30 * 86_400


def window(seconds: float, until: datetime | None = None) -> tuple[datetime, datetime]:
    """The window of `seconds` ending `until` (default now), as UTC moments."""
    end = (until or datetime.now(UTC)).astimezone(UTC)
    return end - timedelta(seconds=seconds), end


def platform_report(services: Services, since: datetime, until: datetime) -> dict[str, Any]:
    """Every platform figure for [since, until) (aware datetimes; naive ones are taken as UTC).

    `happiness["trend"]` is a list of {"start": iso, "count": n, "mean": x | None}, oldest
    first."""
    since, until = _utc(since), _utc(until)
    if until <= since:
        raise InvalidInput(f"the window ends ({iso(until)}) before it starts ({iso(since)})")
    start, end = iso(since), iso(until)
    window_s = (until - since).total_seconds()
    registry = services.registry
    return {
        "since": start,
        "until": end,
        "window_s": int(window_s),
        "adoption": adoption(registry, start, end),
        "happiness": PlatformFeedback(registry).summary(since, until),
        "coverage": coverage(registry),
        "cost": cost(registry, services.store, services.settings, start, end, window_s),
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
