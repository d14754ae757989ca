"""`maturity_report(services, workspace, window)`: the whole report as plain data, the one
source of the JSON answer, the terminal table, the Markdown and the HTML page."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from appliance.maturity.history import History
from appliance.maturity.indicators import observe
from appliance.maturity.observed import Observed, iso
from appliance.maturity.stage import judge
from appliance.monitoring.predictions import parse_window
from appliance.services import Services

DEFAULT_WINDOW = "30d"


def maturity_report(
    services: Services, workspace: str, window: str = DEFAULT_WINDOW, now: datetime | None = None
) -> dict[str, Any]:
    """The indicators of `workspace` over the `window` ending `now`, its stage, its DORA figures
    and the trends the HTML page plots. An unknown workspace is NotFound, a bad window
    InvalidInput (both before anything is read)."""
    seconds = parse_window(window)
    ws = services.workspaces.get(workspace)
    until = (now or datetime.now(UTC)).astimezone(UTC)
    since = until - timedelta(seconds=seconds)
    history = History(services, ws["id"])
    dora = history.dora(since, until)
    observed = Observed(services, ws, since, until, dora, history.events)
    indicators = observe(observed)
    bucket, dora_trend = history.trend(since, until)
    happiness, source = platform_happiness(services, since, until)
    return {
        "workspace": ws["name"],
        "window": window,
        "since": iso(since),
        "until": iso(until),
        "stage": asdict(judge(indicators)),
        "indicators": [asdict(i) for i in indicators],
        "dora": asdict(dora),
        "trends": {
            "bucket": bucket,
            "dora": dora_trend,
            "happiness": happiness,
            "happiness_source": source,
        },
    }


def platform_happiness(
    services: Services, since: datetime, until: datetime
) -> tuple[list[dict[str, Any]], str | None]:
    """The platform's user-happiness trend ({start, count, mean} points) from the platform
    report, and where it came from; ([], None) where this install has no platform report."""
    try:
        from appliance.platform.report import platform_report
    except ModuleNotFoundError as exc:  # only the report's own absence; a broken one raises
        if exc.name not in ("appliance.platform", "appliance.platform.report"):
            raise
        return [], None
    trend = platform_report(services, since, until)["happiness"]["trend"]
    points = [
        {"start": str(p["start"]), "count": int(p["count"]), "mean": p.get("mean")} for p in trend
    ]
    return points, "appliance.platform.report"
