"""The platform API: the platform report across every workspace, and platform ratings (a 1-5
rating of the appliance itself with an optional comment). A rating is a write: it takes a
declared JSON body (`application/json`) of at most FEEDBACK_MAX_BODY bytes, refused from its
Content-Length before any of it is read (and while it streams, past the limit)."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromQuery, JSONBody

from appliance.access.roles import LOCAL, Role
from appliance.access.rules import allow
from appliance.errors import TooLarge
from appliance.monitoring.predictions import parse_window
from appliance.platform.feedback import MAX_COMMENT, PlatformFeedback
from appliance.platform.report import platform_report
from appliance.platform.report import window as window_of
from appliance.server.answers import Answer
from appliance.server.auth import check_workspace, principal_of
from appliance.services import Services

# A comment of MAX_COMMENT characters, each escaped as \uXXXX (6 bytes), and the rest of the body.
FEEDBACK_MAX_BODY = MAX_COMMENT * 6 + 1024


class PlatformRatingRequest(msgspec.Struct, forbid_unknown_fields=True):
    rating: int
    """1 (poor) to 5 (great)."""
    comment: str = ""
    """What works or does not (at most 2,000 characters)."""
    workspace: str | None = None
    """The workspace (team) the rating speaks for, if one; it must exist."""
    user: str = ""
    """Who gives it, for the record (optional; 'http' when empty)."""


class PlatformRating(Answer):
    id: int
    rating: int
    comment: str
    source: str
    """'cli', 'tui', 'http' or 'client'."""
    user: str
    workspace_id: str | None
    workspace: str | None
    created_at: str


class HappinessBucket(Answer):
    start: str
    count: int
    mean: float | None


class LatestComment(Answer):
    rating: int
    comment: str
    user: str
    workspace: str | None
    created_at: str


class Happiness(Answer):
    """Platform ratings given in the window."""

    count: int
    mean: float | None
    histogram: dict[str, int]
    """How many ratings of each value, "1" to "5"."""
    bucket_s: int
    trend: list[HappinessBucket]
    """Per bucket of bucket_s seconds, oldest first; mean null where a bucket has none."""
    latest_comments: list[LatestComment]
    """Newest first."""


class PlatformRatings(Answer):
    ratings: list[PlatformRating]
    """The latest, newest first."""


class WorkspaceAdoption(Answer):
    workspace: str
    production_endpoints: list[str]
    """Active deployments serving their model's `production` version."""
    predictions: int
    runs: int
    events: int
    """Activity in the window."""
    adopted: bool


class Adoption(Answer):
    adopted: int
    workspaces: int
    rate: float | None
    adopted_workspaces: list[str]
    meaning: str
    per_workspace: list[WorkspaceAdoption]


class Coverage(Answer):
    capabilities: dict[str, str]
    """Each capability and what counts as using it."""
    matrix: dict[str, dict[str, bool]]
    """workspace → capability → used."""
    used_by: dict[str, int]
    """capability → workspaces using it."""
    share: dict[str, float]
    """workspace → share of the capabilities it uses."""


class Training(Answer):
    runs: int
    """Runs that ended in the window."""
    runs_by_wall_time: int
    """Of them, those that recorded no CPU time (their wall time counts)."""
    cpu_seconds: float
    gpu_seconds: float


class ServingTime(Answer):
    predictions: int
    cpu_seconds: float
    gpu_seconds: float


class DiskBytes(Answer):
    datasets: int
    runs: int
    models: int
    review: int
    total: int


class Priced(Answer):
    cpu: float
    gpu: float
    disk: float
    total: float


class WorkspaceCost(Answer):
    workspace: str
    training: Training
    serving: ServingTime
    disk_bytes: DiskBytes
    cpu_seconds: float
    gpu_seconds: float
    cost: Priced
    users: int
    named_users: list[str]
    per_user: float


class Prices(Answer):
    cpu_hour: float
    gpu_hour: float
    gb_month: float


class EnergyDomain(Answer):
    domain: str
    name: str
    joules: float


class Energy(Answer):
    available: bool
    domains: list[EnergyDomain]
    note: str


class Cost(Answer):
    prices: Prices
    users_meaning: str
    """What counts as a user."""
    measures: dict[str, str]
    """How training, serving and disk are measured."""
    total: float
    users: int
    per_user: float | None
    per_workspace: list[WorkspaceCost]
    energy: Energy


class PlatformReport(Answer):
    """Adoption, user happiness, capabilities coverage and cost per user, across workspaces."""

    since: str
    until: str
    window_s: int
    adoption: Adoption
    happiness: Happiness
    coverage: Coverage
    cost: Cost


async def small_json_body(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A body refused by its announced length before a byte of it is read (the app's
    `declared_types` guard has checked it says JSON)."""
    length = connection.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > FEEDBACK_MAX_BODY:
        raise TooLarge(
            f"the rating's body is {int(length):,} bytes; at most {FEEDBACK_MAX_BODY:,} are "
            f"read (a comment holds at most {MAX_COMMENT:,} characters)"
        )


class PlatformController(Controller):
    path = "/v1/platform"
    tags = ["platform"]

    @get("/report", opt=allow(Role.viewer, every_workspace=True))
    async def report(
        self, services: NamedDependency[Services], window: FromQuery[str] = "30d"
    ) -> PlatformReport:
        """Adoption, user happiness, capabilities coverage and cost per user across every
        workspace over the window (e.g. 7d, 30d, 12w)."""
        seconds = parse_window(window)
        found = await anyio.to_thread.run_sync(
            lambda: platform_report(services, *window_of(seconds))
        )
        return msgspec.convert(found, PlatformReport)

    @post(
        "/feedback",
        opt=allow(Role.viewer),  # rating the platform is for every user, whatever its role
        status_code=201,
        guards=[small_json_body],
        request_max_body_size=FEEDBACK_MAX_BODY,
    )
    async def rate(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        data: JSONBody[PlatformRatingRequest],
    ) -> PlatformRating:
        """Rate the platform 1-5 with an optional comment (at most 2,000 characters). A rating
        outside 1-5 or a longer comment is 400, an unknown workspace 404, a body over the limit
        413; none of them stores anything. The user is the token's, else the body's."""
        principal = principal_of(request)
        if data.workspace:
            check_workspace(request, data.workspace)
        user = principal.name if principal is not LOCAL else data.user or "http"
        row = await anyio.to_thread.run_sync(
            lambda: PlatformFeedback(services.registry).add(
                data.rating, data.comment, source="http", user=user,
                workspace=data.workspace,
            )
        )  # fmt: skip
        return msgspec.convert(row, PlatformRating)

    @get("/feedback", opt=allow(Role.viewer, every_workspace=True))
    async def ratings(
        self, services: NamedDependency[Services], limit: FromQuery[int] = 50
    ) -> PlatformRatings:
        """The latest platform ratings, newest first (at most `limit`, 1-1000)."""
        rows = await anyio.to_thread.run_sync(PlatformFeedback(services.registry).list, limit)
        return msgspec.convert({"ratings": rows}, PlatformRatings)
