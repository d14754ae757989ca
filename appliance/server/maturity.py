"""The maturity report over HTTP: `GET /v1/workspaces/{workspace}/reports/maturity`, as JSON
(the `Maturity` answer), Markdown or a self-contained HTML page (docs/maturity.md)."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery

from appliance.access.roles import Role
from appliance.access.rules import allow
from appliance.errors import InvalidInput
from appliance.server.answers import Answer
from appliance.server.monitoring import DoraFigures
from appliance.services import Services

FORMATS = {
    "json": "application/json",
    "markdown": "text/markdown",
    "html": "text/html",
}


class MaturityIndicator(Answer):
    id: str
    area: str
    """'tech' or 'process'."""
    name: str
    verdict: str
    """'yes', 'partly' or 'no'."""
    evidence: str
    """What the registry shows, in a sentence; for a 'no', what is missing."""
    figures: dict[str, Any]
    """The numbers the verdict rests on."""


class MaturityStage(Answer):
    name: str
    """'immature', 'developing', 'defined' or 'mature'."""
    score: float
    """(yes + 0.5 × partly) / total."""
    yes: int
    partly: int
    no: int
    total: int
    rule: str


class DoraPoint(Answer):
    start: str
    end: str
    deployments: int
    lead_time_hours: float | None


class HappinessPoint(Answer):
    start: str
    count: int
    mean: float | None


class MaturityTrends(Answer):
    bucket: str
    """'hour', 'day' or 'week': the length of each DORA point."""
    dora: list[DoraPoint]
    happiness: list[HappinessPoint]
    """The platform's mean rating per period (empty without a platform report)."""
    happiness_source: str | None


class Maturity(Answer):
    """A workspace's maturity indicators, stage, DORA figures and trends."""

    workspace: str
    window: str
    since: str
    until: str
    stage: MaturityStage
    indicators: list[MaturityIndicator]
    dora: DoraFigures
    trends: MaturityTrends


class ReportController(Controller):
    path = "/v1/workspaces/{workspace:str}/reports"
    tags = ["reports"]

    @get(
        "/maturity",
        opt=allow(Role.viewer),
        responses={
            200: ResponseSpec(
                data_container=Maturity,
                generate_examples=False,
                description="JSON by default; format=markdown or html for a page",
            )
        },
    )
    async def maturity(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        window: FromQuery[str] = "30d",
        format: FromQuery[str] = "json",
    ) -> Response[Any]:
        """The Tech and Process maturity indicators of the workspace over the window (e.g. 7d,
        30d), each yes/partly/no with its evidence, and the overall stage; `format` json,
        markdown or html (a self-contained page with DORA and platform plots)."""
        if format not in FORMATS:
            raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        from appliance.maturity import render
        from appliance.maturity.report import maturity_report

        found = await anyio.to_thread.run_sync(maturity_report, services, workspace, window)
        if format == "markdown":
            return Response(render.markdown(found), media_type=FORMATS[format])
        if format == "html":
            return Response(render.html(found), media_type=FORMATS[format])
        return Response(msgspec.convert(found, Maturity), media_type=FORMATS[format])
