"""The demo's closing reports: the platform metrics across workspaces (adoption, user happiness,
capabilities coverage, cost per user) after the demo's data scientist rates the platform, and the
workspace's maturity report, written as a self-contained HTML page under the demo's home."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.demo.options import WORKSPACE
from appliance.services import Services

if TYPE_CHECKING:
    from appliance.server.client import ServerClient

RATING = {
    "rating": 5, "comment": "the whole loop on one box", "workspace": WORKSPACE, "user": "demo",
}  # fmt: skip


def rate_platform(server: ServerClient) -> None:
    """The demo's data scientist rates the platform, as `appliance feedback platform` would."""
    server.post_json("/v1/platform/feedback", RATING)


def closing_reports(
    services: Services, note: Callable[[str], None], say: Callable[[str], None]
) -> dict[str, Any]:
    from appliance.maturity import render
    from appliance.maturity.report import maturity_report
    from appliance.platform.report import platform_report

    until = datetime.now(UTC)
    platform = platform_report(services, until - timedelta(days=30), until)
    adoption, happiness = platform["adoption"], platform["happiness"]
    used = platform["coverage"]["matrix"].get(WORKSPACE, {})
    cost = next(c for c in platform["cost"]["per_workspace"] if c["workspace"] == WORKSPACE)
    note(
        f"platform metrics (appliance report platform): adoption {adoption['adopted']} of "
        f"{adoption['workspaces']} workspace(s); happiness {_mean(happiness['mean'])}/5 from "
        f"{happiness['count']} rating(s) (the demo's data scientist gave "
        f"{RATING['rating']} through POST /v1/platform/feedback)"
    )
    say(
        f"   coverage of {WORKSPACE}: {sum(used.values())} of {len(used)} capabilities "
        f"({', '.join(name for name, on in used.items() if on)})"
    )
    say(
        f"   cost of {WORKSPACE}: {cost['training']['cpu_seconds']:.0f} CPU-s training, "
        f"{cost['serving']['cpu_seconds']:.1f} CPU-s serving, "
        f"{cost['disk_bytes']['total'] / 1e6:.0f} MB on disk → {cost['cost']['total']:.4f} at "
        f"the configured prices, {cost['per_user']:.4f} for each of its {cost['users']} "
        f"user(s); {platform['cost']['energy']['note']}"
    )
    maturity = maturity_report(services, WORKSPACE, "30d")
    page = Path(services.settings.home) / "reports" / f"maturity-{WORKSPACE}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render.html(maturity), encoding="utf-8")
    stage = maturity["stage"]
    note(
        f"maturity (appliance report maturity {WORKSPACE}): {stage['name']}, "
        f"{stage['yes']} of {stage['total']} indicators met, {stage['partly']} partly → {page}"
    )
    for indicator in maturity["indicators"]:
        if indicator["verdict"] != "yes":
            say(f"   {indicator['verdict']:<6} {indicator['name']}: {indicator['evidence']}")
    return {"platform": platform, "maturity": maturity, "page": str(page)}


def _mean(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"
